// Structured logs: one JSON object per line on stderr, with a level. Callers pass fields as
// key/value pairs; nothing secret (tokens, secrets, signatures) is ever passed here.
// Thread safe: lines are written whole, one at a time.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace pushhook::util {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct LogField {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, int64_t v) : key(k), value(v) {}
  LogField(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
};

// Lines below this level are dropped. Set once at start-up.
void SetLogLevel(LogLevel level);

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});
// The same with fields gathered at run time.
void LogFields(LogLevel level, std::string_view message, std::span<const LogField> fields);

// The line Log() would write, without the timestamp; for tests.
std::string FormatLogLine(LogLevel level, std::string_view message,
                          std::initializer_list<LogField> fields);

}  // namespace pushhook::util
