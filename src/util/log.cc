#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "model/json_string.h"
#include "model/rfc3339.h"

namespace pushhook::util {
namespace {

std::atomic<LogLevel> g_min_level{LogLevel::kInfo};
std::mutex g_write_mu;

// Writes a whole line, one line at a time: a pipe takes at most PIPE_BUF bytes in one piece,
// and a write may be cut short or interrupted.
void WriteLine(std::string_view line) {
  std::lock_guard lock(g_write_mu);
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: there is nowhere else to say so
    line.remove_prefix(static_cast<size_t>(n));
  }
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendFields(std::string& line, std::string_view message, std::span<const LogField> fields) {
  line += ",\"msg\":";
  model::AppendJsonString(line, message);
  for (const LogField& f : fields) {
    line.push_back(',');
    model::AppendJsonString(line, f.key);
    line.push_back(':');
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      model::AppendJsonString(line, *s);
    } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.6g", *d);
      line += buf;
    } else {
      line += std::get<bool>(f.value) ? "true" : "false";
    }
  }
  line += "}\n";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_min_level.store(level); }

std::string FormatLogLine(LogLevel level, std::string_view message,
                          std::initializer_list<LogField> fields) {
  std::string line = "{\"level\":\"";
  line += LevelName(level);
  line += '"';
  AppendFields(line, message, std::span<const LogField>(fields.begin(), fields.size()));
  return line;
}

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  LogFields(level, message, std::span<const LogField>(fields.begin(), fields.size()));
}

void LogFields(LogLevel level, std::string_view message, std::span<const LogField> fields) {
  if (level < g_min_level.load(std::memory_order_relaxed)) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string line = "{\"ts\":\"" + model::FormatRfc3339Ms(now_ms) + "\",\"level\":\"";
  line += LevelName(level);
  line += '"';
  AppendFields(line, message, fields);
  WriteLine(line);
}

}  // namespace pushhook::util
