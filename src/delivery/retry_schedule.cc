#include "delivery/retry_schedule.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "model/duration.h"

namespace pushhook::delivery {
namespace {

using std::chrono::milliseconds;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A step as it appears in an error message: quoted, one line, not too long.
std::string Quote(std::string_view step) {
  constexpr size_t kMaxShown = 32;
  std::string out = "\"";
  for (const char c : step.substr(0, kMaxShown)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (step.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

std::string StepPrefix(size_t index) { return "retry schedule step " + std::to_string(index + 1); }

// Reads the fixed grammar of HTTP-dates (RFC 9110 section 5.6.7) left to right.
class DateReader {
 public:
  explicit DateReader(std::string_view s) : s_(s) {}

  bool done() const { return s_.empty(); }
  bool Literal(std::string_view lit) {
    if (s_.substr(0, lit.size()) != lit) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  bool Digits(size_t count, int* out) {
    if (s_.size() < count) return false;
    int value = 0;
    for (size_t i = 0; i < count; ++i) {
      if (s_[i] < '0' || s_[i] > '9') return false;
      value = value * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(count);
    *out = value;
    return true;
  }
  // One of `names`, compared without regard to case; its index goes to `out`.
  template <size_t N>
  bool Name(const std::array<std::string_view, N>& names, int* out) {
    for (size_t i = 0; i < N; ++i) {
      const std::string_view name = names[i];
      if (s_.size() < name.size()) continue;
      bool same = true;
      for (size_t j = 0; j < name.size() && same; ++j) {
        same = std::tolower(static_cast<unsigned char>(s_[j])) ==
               std::tolower(static_cast<unsigned char>(name[j]));
      }
      if (!same) continue;
      s_.remove_prefix(name.size());
      *out = static_cast<int>(i);
      return true;
    }
    return false;
  }
  bool Gmt() {
    int ignored;
    return Name(std::array<std::string_view, 1>{"GMT"}, &ignored);
  }
  bool TimeOfDay(int* hour, int* minute, int* second) {
    return Digits(2, hour) && Literal(":") && Digits(2, minute) && Literal(":") &&
           Digits(2, second) && *hour <= 23 && *minute <= 59 && *second <= 60;
  }

 private:
  std::string_view s_;
};

constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu",
                                                        "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct DateTime {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// Sun, 06 Nov 1994 08:49:37 GMT
bool ReadImfFixdate(std::string_view s, DateTime* t) {
  DateReader r(s);
  int ignored;
  return r.Name(kShortDays, &ignored) && r.Literal(", ") && r.Digits(2, &t->day) &&
         r.Literal(" ") && r.Name(kMonths, &t->month) && r.Literal(" ") && r.Digits(4, &t->year) &&
         r.Literal(" ") && r.TimeOfDay(&t->hour, &t->minute, &t->second) && r.Literal(" ") &&
         r.Gmt() && r.done();
}

// Sunday, 06-Nov-94 08:49:37 GMT (two-digit year, resolved by the caller)
bool ReadRfc850Date(std::string_view s, DateTime* t) {
  DateReader r(s);
  int ignored;
  return r.Name(kLongDays, &ignored) && r.Literal(", ") && r.Digits(2, &t->day) && r.Literal("-") &&
         r.Name(kMonths, &t->month) && r.Literal("-") && r.Digits(2, &t->year) && r.Literal(" ") &&
         r.TimeOfDay(&t->hour, &t->minute, &t->second) && r.Literal(" ") && r.Gmt() && r.done();
}

// Sun Nov  6 08:49:37 1994
bool ReadAsctimeDate(std::string_view s, DateTime* t) {
  DateReader r(s);
  int ignored;
  if (!(r.Name(kShortDays, &ignored) && r.Literal(" ") && r.Name(kMonths, &t->month) &&
        r.Literal(" "))) {
    return false;
  }
  if (!(r.Literal(" ") ? r.Digits(1, &t->day) : r.Digits(2, &t->day))) return false;
  return r.Literal(" ") && r.TimeOfDay(&t->hour, &t->minute, &t->second) && r.Literal(" ") &&
         r.Digits(4, &t->year) && r.done();
}

std::optional<int64_t> ToUnixMs(const DateTime& t) {
  const std::chrono::year_month_day date{std::chrono::year(t.year),
                                         std::chrono::month(static_cast<unsigned>(t.month + 1)),
                                         std::chrono::day(static_cast<unsigned>(t.day))};
  if (!date.ok()) return std::nullopt;
  const auto days = std::chrono::sys_days(date).time_since_epoch().count();
  return ((int64_t{days} * 24 + t.hour) * 60 + t.minute) * 60'000 + int64_t{t.second} * 1000;
}

int YearOf(int64_t unix_ms) {
  const auto days = std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<milliseconds>(milliseconds(unix_ms)));
  return static_cast<int>(std::chrono::year_month_day(days).year());
}

std::optional<int64_t> ParseHttpDate(std::string_view text, int64_t now_unix_ms) {
  DateTime t;
  if (ReadImfFixdate(text, &t) || ReadAsctimeDate(text, &t)) return ToUnixMs(t);
  if (!ReadRfc850Date(text, &t)) return std::nullopt;
  // RFC 9110: a two-digit year more than 50 years ahead means the latest such year in the past.
  const int now_year = YearOf(now_unix_ms);
  int year = now_year - now_year % 100 + t.year;
  if (year > now_year + 50) year -= 100;
  t.year = year;
  return ToUnixMs(t);
}

}  // namespace

RetrySchedule::RetrySchedule(std::vector<milliseconds> steps) : steps_(std::move(steps)) {
  for (const milliseconds step : steps_) longest_ = std::max(longest_, step);
}

model::StatusOr<RetrySchedule> RetrySchedule::Parse(std::string_view text) {
  if (Trim(text).empty()) return model::InvalidArgument("retry schedule is empty");
  std::vector<milliseconds> steps;
  size_t index = 0;
  while (true) {
    const size_t comma = text.find(',');
    const std::string_view step = Trim(text.substr(0, comma));
    if (index == kMaxSteps) {
      return model::InvalidArgument("retry schedule has more than " + std::to_string(kMaxSteps) +
                                    " steps");
    }
    if (step.empty()) return model::InvalidArgument(StepPrefix(index) + " is empty");
    const std::optional<milliseconds> delay = model::ParseDuration(step);
    if (!delay) {
      return model::InvalidArgument(StepPrefix(index) + " (" + Quote(step) +
                                    ") is not a duration (use an integer and one of ms, s, m, h, "
                                    "d, like 5s or 30m)");
    }
    if (delay->count() == 0) {
      return model::InvalidArgument(StepPrefix(index) + " (" + Quote(step) +
                                    ") must be longer than zero");
    }
    if (*delay > kMaxStep) {
      return model::InvalidArgument(StepPrefix(index) + " (" + Quote(step) +
                                    ") is longer than the maximum of " +
                                    model::FormatDuration(kMaxStep));
    }
    steps.push_back(*delay);
    ++index;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return RetrySchedule(std::move(steps));
}

std::optional<milliseconds> RetrySchedule::DelayAfter(int attempts_made, double uniform01) const {
  if (attempts_made < 1) return milliseconds(0);
  const auto index = static_cast<size_t>(attempts_made - 1);
  if (index >= steps_.size()) return std::nullopt;
  // Integer bounds [0.8, 1.2) × step (steps are at most a year, so ×6 cannot overflow); the
  // jitter only picks a point between them, so no rounding can leave the range.
  const int64_t step = steps_[index].count();
  const int64_t low = step * 4 / 5;
  const int64_t high = step * 6 / 5;
  const int64_t span = high - low;
  if (span <= 0) return milliseconds(low);
  if (!(uniform01 > 0)) uniform01 = 0;  // also catches NaN
  const auto offset =
      static_cast<int64_t>(std::floor(static_cast<double>(span) * std::min(uniform01, 1.0)));
  return milliseconds(low + std::min(offset, span - 1));
}

std::string RetrySchedule::ToString() const {
  std::string out;
  for (const milliseconds step : steps_) {
    if (!out.empty()) out += ',';
    out += model::FormatDuration(step);
  }
  return out;
}

std::optional<milliseconds> ParseRetryAfter(std::string_view value, int64_t now_unix_ms) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  const int64_t max_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(RetrySchedule::kMaxStep).count();
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range || seconds > static_cast<uint64_t>(max_seconds)) {
      return RetrySchedule::kMaxStep;
    }
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return std::chrono::seconds(static_cast<int64_t>(seconds));
  }
  const std::optional<int64_t> at = ParseHttpDate(value, now_unix_ms);
  if (!at) return std::nullopt;
  if (*at <= now_unix_ms) return milliseconds(0);
  return std::min(milliseconds(*at - now_unix_ms), milliseconds(RetrySchedule::kMaxStep));
}

}  // namespace pushhook::delivery
