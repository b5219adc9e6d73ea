// A strict RFC 4180 reader for the tests (node ships none): fields separated by commas, records
// ended by CRLF, a field that holds a comma, a double quote, CR or LF quoted, quotes inside it
// doubled. Anything else is refused with the byte offset, so that a sloppy writer fails the test
// instead of being read charitably: a bare LF or CR between records, a quote inside an unquoted
// field, text after a closing quote, an unclosed quote, records of different lengths.

export class CsvError extends Error {}

// Parses `text` into an array of records (arrays of strings). The last record may or may not end
// with CRLF; an empty text is no records.
export function parseCsv(text) {
  const records = [];
  let record = [];
  let field = '';
  let i = 0;
  const fail = (what) => {
    throw new CsvError(`${what} at offset ${i}: ${JSON.stringify(text.slice(Math.max(0, i - 20), i + 20))}`);
  };
  const endRecord = () => {
    record.push(field);
    field = '';
    if (records.length > 0 && record.length !== records[0].length) {
      fail(`record ${records.length + 1} has ${record.length} fields, the first has ${records[0].length}`);
    }
    records.push(record);
    record = [];
  };
  if (text.length === 0) return records;
  for (;;) {
    // At the start of a field.
    if (text[i] === '"') {
      i += 1;
      for (;;) {
        if (i >= text.length) fail('unclosed quoted field');
        const c = text[i];
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        field += c;
        i += 1;
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') fail('text after a closing quote');
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r') {
        if (text[i] === '"') fail('a quote inside an unquoted field');
        if (text[i] === '\n') fail('a bare LF');
        field += text[i];
        i += 1;
      }
    }
    // After a field: a comma, CRLF or the end.
    if (i >= text.length) {
      endRecord();
      return records;
    }
    if (text[i] === ',') {
      record.push(field);
      field = '';
      i += 1;
      continue;
    }
    if (text[i] !== '\r' || text[i + 1] !== '\n') fail('a CR not followed by LF');
    i += 2;
    endRecord();
    if (i >= text.length) return records;
  }
}
