// Holds the server's JSON answers to docs/openapi.json: every answer the tests receive through
// harness.request() is checked against the schema the description gives for its method, path
// and status (npm ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses, with ajv-formats). A path the
// description does not name (a test of unknown routes) and a method it does not list for a path
// (a 405) are the router's, not the API's, and are not checked.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const SPEC_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/openapi.json');
// References are made absolute, to the components registered under the id "openapi".
const spec = JSON.parse(fs.readFileSync(SPEC_PATH, 'utf8').replaceAll('"#/components/', '"openapi#/components/'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: 'openapi', components: spec.components });

const operations = Object.entries(spec.paths).map(([pattern, item]) => ({
  pattern,
  regex: new RegExp(`^${pattern.replace(/\{[^}]+\}/g, '[^/]+').replace(/\./g, '\\.')}$`),
  item,
}));
const validators = new Map();

// Why `json`, the answer to `method urlPath` with `status`, does not match the description, or
// null when it does (or when the description does not cover the route).
export function checkAnswer(method, urlPath, status, json) {
  const pathname = new URL(urlPath, 'http://x').pathname;
  const found = operations.find((o) => o.regex.test(pathname));
  const operation = found?.item[method.toLowerCase()];
  if (!operation) return null;
  const where = `${method} ${found.pattern} answered ${status}`;
  const response = operation.responses[String(status)] ?? operation.responses.default;
  if (!response) return `${where}, a status docs/openapi.json does not describe for it`;
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return json === undefined ? null : `${where} with JSON, which docs/openapi.json does not describe`;
  const key = `${method} ${found.pattern} ${status}`;
  let validate = validators.get(key);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(key, validate);
  }
  if (validate(json)) return null;
  return `${where} with JSON that does not match docs/openapi.json: ` +
    `${ajv.errorsText(validate.errors, { separator: '; ' })}: ${JSON.stringify(json).slice(0, 300)}`;
}
