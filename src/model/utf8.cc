#include "model/utf8.h"

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

}  // namespace

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
