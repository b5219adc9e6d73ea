// libFuzzer target for `pushhook serve --config FILE`: cli::LoadServeConfig on a fuzzed TOML file,
// with an empty environment and no flags. Whatever the file holds, loading must end in a
// configuration or an InvalidArgument with a one-line reason, never a crash, an exception or
// undefined behaviour (durations, sizes and retry schedules are parsed from fuzzed text here).
//
// Built with config.cc compiled in and toml++ header-only, so that the TOML parser is
// instrumented as well (see CMakeLists.txt). The file is rewritten in place for every input.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "cli/config.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

const std::string& ConfigPath() {
  static const std::string* const path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern =
        std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/pushhook-toml-fuzz-XXXXXX";
    const int fd = mkstemp(pattern.data());
    if (fd < 0) std::abort();
    close(fd);
    auto* p = new std::string(pattern);
    std::atexit([] { unlink(ConfigPath().c_str()); });
    return p;
  }();
  return *path;
}

void WriteFile(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) std::abort();
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n <= 0) std::abort();
    data += n;
    size -= static_cast<size_t>(n);
  }
  close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = ConfigPath();
  WriteFile(path, data, size);
  const auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  const auto config = pushhook::cli::LoadServeConfig(path, no_env, {}, false);
  if (config.ok()) {
    Check(config->delivery_timeout.count() > 0 && config->connect_timeout.count() > 0);
    Check(config->max_body_bytes > 0 && config->max_backlog > 0);
    Check(config->retention_delivered.count() > 0 && config->retention_failed.count() > 0);
    Check(config->circuit.base_pause.count() > 0 &&
          config->circuit.max_pause >= config->circuit.base_pause);
    Check(config->ingest_rate_limit >= 0);
    Check(config->circuit.failure_threshold > 0);
    Check(config->min_free_disk_bytes == 0 || config->min_free_disk_bytes >= (1u << 20));
  } else {
    // One line, as the exit-code-2 contract of DESIGN section 8 asks, with no control characters
    // (they come from the file, quoted in the message).
    for (const char c : config.status().message()) {
      Check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    }
  }
  return 0;
}
