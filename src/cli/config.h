// Configuration of `pushhook serve` (DESIGN section 8): a TOML file, overridden by PUSHHOOK_*
// environment variables, overridden by flags. Every key has one name in all three forms
// (delivery.retry_schedule <-> PUSHHOOK_DELIVERY_RETRY_SCHEDULE <-> --retry-schedule), and every
// source goes through the same parser, so a value means the same wherever it is set. Only the
// value that wins is checked, and its error names where it was set: "--durability: …",
// "PUSHHOOK_DURABILITY: …" or "config file <path>: …".
// Pure functions; errors are InvalidArgument with a one-line reason (exit code 2).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/status.h"
#include "server/app.h"

namespace pushhook::cli {

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// What a setting's value is in the TOML file (the environment and flags give text): a string
// where the file could be read two ways ("15s", "127.0.0.1:8080"), a TOML type where it cannot.
enum class TomlType {
  kString,
  kBoolean,
  kInteger,
  kNumber,     // an integer or a float
  kDurations,  // a string of durations separated by commas, or an array of such strings
};

struct Setting {
  std::string_view key;   // TOML key, dotted: "delivery.retry_schedule"
  std::string_view flag;  // "--retry-schedule", or "" when there is no flag
  bool env_only = false;  // secrets: only from the environment
  std::string_view help;
  // What it is when nothing sets it, as --help shows it: a value Apply takes, or a description
  // in parentheses.
  std::string_view default_text;
  TomlType toml_type = TomlType::kString;
};

// Every configuration key, in the order --help lists them.
const std::vector<Setting>& Settings();

// "delivery.retry_schedule" -> "PUSHHOOK_DELIVERY_RETRY_SCHEDULE".
std::string EnvName(std::string_view key);

// Builds the configuration from a TOML file (`config_path`, may be empty), the environment and
// flag values keyed by setting key. `dev` turns on allow_http and allow_private_destinations.
model::StatusOr<server::ServeConfig> LoadServeConfig(
    const std::string& config_path, const EnvLookup& env,
    const std::map<std::string, std::string>& flags, bool dev);

}  // namespace pushhook::cli
