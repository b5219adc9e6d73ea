#include "model/utf8.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cstdint>

namespace pushhook::model {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The number of bytes of the well-formed sequence that `lead` starts (1 to 4), or 0 when no
// well-formed sequence starts with it; `low` and `high` bound its second byte (RFC 3629's
// table: E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F, and 80..BF elsewhere).
int SequenceLength(uint8_t lead, uint8_t& low, uint8_t& high) {
  low = 0x80;
  high = 0xBF;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
    return 4;
  }
  return 0;
}

// The well-formed sequence at the start of `bytes` (1 to 4 bytes), or 0 when there is none.
size_t WellFormedLength(std::string_view bytes) {
  uint8_t low = 0;
  uint8_t high = 0;
  const auto length =
      static_cast<size_t>(SequenceLength(static_cast<uint8_t>(bytes[0]), low, high));
  if (length == 0 || length > bytes.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto next = static_cast<uint8_t>(bytes[k]);
    if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) return 0;
  }
  return length;
}

char32_t Decode(std::string_view sequence) {
  const auto byte = [&](size_t k) {
    return static_cast<char32_t>(static_cast<uint8_t>(sequence[k]));
  };
  switch (sequence.size()) {
    case 1:
      return byte(0);
    case 2:
      return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3:
      return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    default:
      return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) |
             (byte(3) & 0x3F);
  }
}

void Encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::string ToLowerCase(std::string_view text) {
  // Made once and never freed: towlower_l reads it from any thread.
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t{});
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto ch = static_cast<unsigned char>(text[i]);
    if (ch < 0x80) {
      out += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
      ++i;
      continue;
    }
    const size_t length = WellFormedLength(text.substr(i));
    if (length == 0 || utf8 == locale_t{}) {
      out += text[i];  // kept as it is
      ++i;
      continue;
    }
    const auto lowered = static_cast<char32_t>(
        towlower_l(static_cast<wint_t>(Decode(text.substr(i, length))), utf8));
    Encode(lowered, out);
    i += length;
  }
  return out;
}

std::string ToValidUtf8(std::string_view bytes, bool cut) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<uint8_t>(bytes[i]);
    uint8_t low = 0;
    uint8_t high = 0;
    const int length = SequenceLength(lead, low, high);
    if (length == 0 || lead == 0) {  // NUL, or a byte that starts no sequence
      out += kReplacement;
      ++i;
      continue;
    }
    // How many bytes from i go on as the sequence must (the lead counts as one).
    size_t good = 1;
    while (good < static_cast<size_t>(length) && i + good < bytes.size()) {
      const auto next = static_cast<uint8_t>(bytes[i + good]);
      if (next < (good == 1 ? low : 0x80) || next > (good == 1 ? high : 0xBF)) break;
      ++good;
    }
    if (good == static_cast<size_t>(length)) {
      out.append(bytes.substr(i, good));
    } else if (cut && i + good == bytes.size()) {
      break;  // a character the cut went through
    } else {
      out += kReplacement;
    }
    i += good;
  }
  return out;
}

bool HasControlCharacter(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string QuotedText(std::string_view text, size_t max_bytes) {
  std::string valid = ToValidUtf8(text);
  size_t end = std::min(valid.size(), max_bytes);
  while (end < valid.size() && (static_cast<unsigned char>(valid[end]) & 0xC0) == 0x80) --end;
  valid.resize(end);
  return "'" + valid + "'";
}

}  // namespace pushhook::model
