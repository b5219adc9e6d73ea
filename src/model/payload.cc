#include "model/payload.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace pushhook::model {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's civil-from-days algorithms).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool ReadDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(esc, sizeof(esc));
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void AppendPayload(std::string& out, const Event& e, PayloadFormat format,
                   std::string_view site_id) {
  out.append("{\"action\":");
  AppendJsonString(out, ActionName(e.action));
  out.append(",\"cookie_id\":");
  AppendJsonString(out, e.cookie_id);
  out.append(",\"cid\":");
  AppendJsonString(out, e.cid);
  out.append(",\"notification_title\":");
  AppendJsonString(out, e.notification_title);
  out.append(",\"reference_id\":");
  AppendJsonString(out, e.reference_id);
  out.append(",\"utm_campaign\":");
  AppendJsonString(out, e.utm_campaign);
  out.append(",\"utm_content\":");
  AppendJsonString(out, e.utm_content);
  out.append(",\"utm_medium\":");
  AppendJsonString(out, e.utm_medium);
  out.append(",\"utm_source\":");
  AppendJsonString(out, e.utm_source);
  out.append(",\"utm_term\":");
  AppendJsonString(out, e.utm_term);
  out.append(",\"clicked_button\":");
  char digits[16];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), e.clicked_button);
  out.append(digits, end);
  if (format == PayloadFormat::kExtended) {
    out.append(",\"event_id\":");
    AppendJsonString(out, e.event_id);
    out.append(",\"site_id\":");
    AppendJsonString(out, site_id);
    out.append(",\"occurred_at\":");
    AppendJsonString(out, FormatRfc3339Ms(e.occurred_at_ms));
  }
  out.push_back('}');
}

std::string Payload(const Event& event, PayloadFormat format, std::string_view site_id) {
  std::string out;
  out.reserve(320);
  AppendPayload(out, event, format, site_id);
  return out;
}

std::string FormatRfc3339Ms(int64_t unix_ms) {
  int64_t days = unix_ms / 86400000;
  int64_t ms_of_day = unix_ms % 86400000;
  if (ms_of_day < 0) {
    ms_of_day += 86400000;
    --days;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  const int64_t secs = ms_of_day / 1000;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60),
                static_cast<long long>(ms_of_day % 1000));
  return buf;
}

bool ParseRfc3339(std::string_view s, int64_t* unix_ms) {
  int year, month, day, hour, minute, second;
  if (!ReadDigits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !ReadDigits(s, 5, 2, &month) ||
      s[7] != '-' || !ReadDigits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ReadDigits(s, 11, 2, &hour) || s[13] != ':' || !ReadDigits(s, 14, 2, &minute) ||
      s[16] != ':' || !ReadDigits(s, 17, 2, &second)) {
    return false;
  }
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysIn[month - 1] || hour > 23 || minute > 59 ||
      second > 60) {
    return false;
  }
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return false;
  size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return false;
    for (size_t i = digits; i < 3; ++i) millis *= 10;
  }
  if (pos >= s.size()) return false;
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!ReadDigits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ReadDigits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return false;
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  const int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + std::min(second, 59) -
                       static_cast<int64_t>(offset_minutes) * 60;
  *unix_ms = secs * 1000 + millis;
  return true;
}

}  // namespace pushhook::model
