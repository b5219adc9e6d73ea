#include "cli/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "http/server.h"
#include "model/base64.h"
#include "model/duration.h"

namespace pushhook::cli {
namespace {

using model::InvalidArgument;
using model::Status;

const std::vector<Setting> kSettings = {
    {"listen", "--listen", false, "address to serve on, host:port", "127.0.0.1:8080"},
    {"data_dir", "--data-dir", false, "folder for the database and the generated admin token",
     "./pushhook-data"},
    {"database", "--database", false, "sqlite://<path>, or postgres://... (several nodes)",
     "(sqlite://<data_dir>/pushhook.db)"},
    {"database_pool", "--database-pool", false,
     "PostgreSQL: connections for reads and admin writes, per node", "8", TomlType::kInteger},
    {"cluster.node_id", "--node-id", false, "PostgreSQL: this node's name among the nodes",
     "(<hostname>-<pid>)"},
    {"cluster.lease", "--lease", false,
     "PostgreSQL: how long a node holds an endpoint without renewing; a dead node's endpoints "
     "move to the others after this",
     "10s"},
    {"admin_token", "", true, "operator token (PUSHHOOK_ADMIN_TOKEN only)",
     "(read or made in <data_dir>/admin-token)"},
    {"secrets_key", "", true,
     "base64 of 32 bytes sealing endpoint secrets at rest (PUSHHOOK_SECRETS_KEY only)",
     "(read or made in <data_dir>/secrets-key)"},
    {"durability", "--durability", false, "full (sync every commit) or normal", "full"},
    {"delivery.retry_schedule", "--retry-schedule", false,
     "waits between attempts, each with 20 % jitter", "5s,5m,30m,2h,5h,10h,10h",
     TomlType::kDurations},
    {"delivery.timeout", "--delivery-timeout", false, "time allowed for one attempt", "15s"},
    {"delivery.connect_timeout", "--connect-timeout", false, "time allowed to connect", "5s"},
    {"delivery.allow_http", "--allow-http", false, "allow plain http destinations", "false",
     TomlType::kBoolean},
    {"delivery.allow_private_destinations", "--allow-private-destinations", false,
     "allow loopback, private and link-local destinations", "false", TomlType::kBoolean},
    {"delivery.ca_file", "--ca-file", false, "CA bundle for https destinations",
     "(the system store)"},
    {"delivery.disable_after", "--disable-after", false,
     "disable an endpoint whose every attempt failed for this long", "5d"},
    {"delivery.circuit_threshold", "--circuit-threshold", false,
     "consecutive failures that open an endpoint's circuit", "5", TomlType::kInteger},
    {"delivery.circuit_pause", "--circuit-pause", false,
     "first pause of an open circuit; it doubles on each failed probe, up to 60 times this", "5s"},
    {"shutdown_grace", "--shutdown-grace", false,
     "on SIGTERM, how long the requests and deliveries in flight may take to finish", "10s"},
    {"ingest.max_body_bytes", "--max-body-bytes", false, "largest ingest request body", "1048576",
     TomlType::kInteger},
    {"ingest.max_backlog", "--max-backlog", false,
     "ingest answers 503 while more messages than this wait for delivery", "5000000",
     TomlType::kInteger},
    {"ingest.max_site_backlog", "--max-site-backlog", false,
     "a site's ingest answers 503 while more of its messages than this wait for delivery (one "
     "tenant's dead endpoints cannot fill the backlog every tenant shares)",
     "(half of ingest.max_backlog)", TomlType::kInteger},
    {"ingest.rate_limit", "--ingest-rate-limit", false,
     "requests per second per ingest key, 0 for no limit (429 with Retry-After beyond it)", "0",
     TomlType::kNumber},
    {"ingest.min_free_disk_mb", "--min-free-disk-mb", false,
     "ingest answers 503 while the data folder's disk has less free space", "256",
     TomlType::kInteger},
    {"http.header_timeout", "--header-timeout", false,
     "time allowed for a request's header to arrive (slow clients are cut off)", "10s"},
    {"http.body_timeout", "--body-timeout", false, "time allowed for a request's body to arrive",
     "30s"},
    {"tls.cert_file", "--tls-cert", false,
     "serve HTTPS with this PEM certificate (the chain, leaf first); re-read on SIGHUP",
     "(none: plain HTTP)"},
    {"tls.key_file", "--tls-key", false,
     "the PEM private key of tls.cert_file, unencrypted; re-read on SIGHUP", "(none)"},
    {"retention.delivered", "", false, "how long delivered messages are kept", "7d"},
    {"retention.failed", "", false, "how long failed messages are kept", "30d"},
};

// What an error may quote of a database setting: its scheme, where it has one, since the rest
// can hold a password (postgres://user:password@host/db, or ?password=...).
std::string QuotedDatabase(const std::string& value) {
  // A scheme (RFC 3986 section 3.1): a letter, then letters, digits, '+', '-' or '.'.
  const size_t scheme = value.find("://");
  const auto in_scheme = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
  };
  if (scheme != std::string::npos && scheme > 0 &&
      std::isalpha(static_cast<unsigned char>(value[0])) != 0 &&
      std::all_of(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(scheme), in_scheme)) {
    return "'" + value.substr(0, scheme + 3) + "...'";
  }
  if (value.find('@') != std::string::npos || value.find("password") != std::string::npos) {
    return "a value that is not a URL";
  }
  return "'" + value + "'";
}

model::StatusOr<bool> ParseBool(std::string_view key, std::string_view value) {
  if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "0" || value == "no" || value == "off") return false;
  return InvalidArgument(std::string(key) + " must be true or false, got '" + std::string(value) +
                         "'");
}

// Longer than any sensible setting, and short enough that "now + setting" and the circuit's
// 60-fold maximum pause cannot overflow 64-bit milliseconds.
constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 3650);

model::StatusOr<std::chrono::milliseconds> ParsePositiveDuration(std::string_view key,
                                                                 std::string_view value) {
  auto d = model::ParseDuration(value);
  if (!d) {
    return InvalidArgument(std::string(key) +
                           " must be a duration such as 500ms, 15s or 7d, got '" +
                           std::string(value) + "'");
  }
  if (d->count() <= 0) {
    return InvalidArgument(std::string(key) + " must be longer than zero, got '" +
                           std::string(value) + "'");
  }
  if (*d > kMaxDuration) {
    return InvalidArgument(std::string(key) + " must be at most 3650d, got '" + std::string(value) +
                           "'");
  }
  return *d;
}

// What the server accepts as the host to listen on: an IPv4 or IPv6 address (with a scope, as in
// fe80::1%eth0), or localhost.
bool IsIpAddress(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char address[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, host.c_str(), address) == 1) return true;
  return ::inet_pton(AF_INET6, host.substr(0, host.find('%')).c_str(), address) == 1;
}

// Applies one setting's text value, whatever source it came from.
Status Apply(server::ServeConfig& c, std::string_view key, const std::string& value) {
  if (key == "listen") {
    // Checked here as the server reads it (http::Server::Listen), so that a bad address is
    // refused with the name of the flag, variable or file that gave it.
    std::string host;
    uint16_t port = 0;
    if (!http::SplitHostPort(value, &host, &port)) {
      const size_t colon = value.rfind(':');
      const std::string_view digits = colon == std::string::npos
                                          ? std::string_view()
                                          : std::string_view(value).substr(colon + 1);
      uint64_t number = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
      if (!digits.empty() && end == digits.data() + digits.size() &&
          (ec == std::errc::result_out_of_range || (ec == std::errc() && number > 65535))) {
        return InvalidArgument("listen's port must be at most 65535, got '" + value + "'");
      }
      return InvalidArgument("listen must be host:port, got '" + value + "'");
    }
    if (!IsIpAddress(host)) {
      return InvalidArgument("listen must be an IP address (or localhost) and a port, got '" +
                             value + "'");
    }
    c.listen = value;
  } else if (key == "data_dir") {
    if (value.empty()) return InvalidArgument("data_dir must not be empty");
    c.data_dir = value;
  } else if (key == "database") {
    if (value.rfind("sqlite://", 0) != 0 && value.rfind("postgres://", 0) != 0 &&
        value.rfind("postgresql://", 0) != 0) {
      return InvalidArgument("database must be sqlite://<path> or postgres://..., got " +
                             QuotedDatabase(value));
    }
    if (value == "sqlite://")
      return InvalidArgument("database sqlite:// needs a path: sqlite://<path>");
    c.database = value;
  } else if (key == "admin_token") {
    // It is sent as "authorization: Bearer <token>": a space or a control character in it
    // could never be sent back as it is.
    if (std::any_of(value.begin(), value.end(),
                    [](char ch) { return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f; })) {
      return InvalidArgument("admin_token must not hold spaces or control characters");
    }
    c.admin_token = value;
  } else if (key == "secrets_key") {
    // Checked here, before anything is written into the data folder (server/key_files.cc reads
    // it the same way).
    if (auto bytes = model::Base64Decode(value); !bytes || bytes->size() != 32) {
      return InvalidArgument("secrets_key must be base64 of 32 bytes");
    }
    c.secrets_key = value;
  } else if (key == "durability") {
    if (value != "full" && value != "normal") {
      return InvalidArgument("durability must be full or normal, got '" + value + "'");
    }
    c.durability_full = value == "full";
  } else if (key == "delivery.retry_schedule") {
    auto schedule = delivery::RetrySchedule::Parse(value);
    if (!schedule.ok()) return schedule.status();
    c.retry_schedule = *schedule;
  } else if (key == "cluster.node_id") {
    if (value.empty() || value.size() > 64 || value.find_first_of(" \t\r\n") != std::string::npos) {
      return InvalidArgument("cluster.node_id must be 1 to 64 characters without spaces, got '" +
                             value + "'");
    }
    c.node_id = value;
  } else if (key == "ingest.max_body_bytes" || key == "ingest.max_backlog" ||
             key == "ingest.max_site_backlog" || key == "ingest.min_free_disk_mb" ||
             key == "delivery.circuit_threshold" || key == "database_pool") {
    uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || value.empty() ||
        (n == 0 && key != "ingest.min_free_disk_mb")) {
      return InvalidArgument(std::string(key) + " must be a positive integer, got '" + value + "'");
    }
    // Larger values would wrap around when stored (as an int, or as bytes).
    uint64_t max = std::numeric_limits<uint64_t>::max();
    if (key == "delivery.circuit_threshold") max = std::numeric_limits<int>::max();
    if (key == "database_pool") max = 100;
    if (key == "ingest.min_free_disk_mb") max >>= 20;
    if (n > max) {
      return InvalidArgument(std::string(key) + " must be at most " + std::to_string(max) +
                             ", got '" + value + "'");
    }
    if (key == "ingest.max_body_bytes") c.max_body_bytes = n;
    if (key == "ingest.max_backlog") c.max_backlog = n;
    if (key == "ingest.max_site_backlog") c.max_site_backlog = n;
    if (key == "ingest.min_free_disk_mb") c.min_free_disk_bytes = n << 20;
    if (key == "delivery.circuit_threshold") c.circuit.failure_threshold = static_cast<int>(n);
    if (key == "database_pool") c.database_pool = n;
  } else if (key == "delivery.timeout" || key == "delivery.connect_timeout" ||
             key == "retention.delivered" || key == "retention.failed" ||
             key == "delivery.disable_after" || key == "shutdown_grace" ||
             key == "delivery.circuit_pause" || key == "http.header_timeout" ||
             key == "http.body_timeout" || key == "cluster.lease") {
    auto d = ParsePositiveDuration(key, value);
    if (!d.ok()) return d.status();
    if (key == "delivery.disable_after") c.disable_after = *d;
    if (key == "shutdown_grace") c.shutdown_grace = *d;
    if (key == "cluster.lease") {
      if (*d < std::chrono::milliseconds(300)) {
        return InvalidArgument("cluster.lease must be at least 300ms, got '" + value + "'");
      }
      c.lease = *d;
    }
    if (key == "http.header_timeout") c.header_timeout = *d;
    if (key == "http.body_timeout") c.body_timeout = *d;
    if (key == "delivery.circuit_pause") {
      c.circuit.base_pause = *d;
      c.circuit.max_pause = *d * 60;
    }
    if (key == "delivery.timeout") c.delivery_timeout = *d;
    if (key == "delivery.connect_timeout") c.connect_timeout = *d;
    if (key == "retention.delivered") c.retention_delivered = *d;
    if (key == "retention.failed") c.retention_failed = *d;
  } else if (key == "delivery.allow_http" || key == "delivery.allow_private_destinations") {
    auto b = ParseBool(key, value);
    if (!b.ok()) return b.status();
    (key == "delivery.allow_http" ? c.allow_http : c.allow_private_destinations) = *b;
  } else if (key == "ingest.rate_limit") {
    double rate = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), rate);
    if (ec != std::errc() || end != value.data() + value.size() || value.empty() || rate < 0) {
      return InvalidArgument("ingest.rate_limit must be a number of requests per second, got '" +
                             value + "'");
    }
    c.ingest_rate_limit = rate;
  } else if (key == "delivery.ca_file") {
    c.ca_file = value;
  } else if (key == "tls.cert_file" || key == "tls.key_file") {
    if (value.empty()) return InvalidArgument(std::string(key) + " must be a file's path, got ''");
    (key == "tls.cert_file" ? c.tls_cert_file : c.tls_key_file) = value;
  } else {
    return InvalidArgument("unknown setting " + std::string(key));
  }
  return Status::Ok();
}

// The TOML type of a value, as an error names it.
std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A TOML value of the type its setting takes, as the text the other sources would give; an
// error naming the type expected and the type found otherwise. `data_dir = 5` is a mistake in a
// typed file, not the folder "5".
model::StatusOr<std::string> TomlText(const Setting& setting, const toml::node& node) {
  const auto wrong = [&](std::string_view expected) {
    return InvalidArgument(std::string(setting.key) + " must be " + std::string(expected) +
                           ", not " + std::string(TomlTypeName(node)));
  };
  switch (setting.toml_type) {
    case TomlType::kString:
      if (!node.is_string()) return wrong("a string");
      return *node.value<std::string>();
    case TomlType::kBoolean:
      if (!node.is_boolean()) return wrong("a boolean (true or false)");
      return std::string(*node.value<bool>() ? "true" : "false");
    case TomlType::kInteger:
      if (!node.is_integer()) return wrong("an integer");
      return std::to_string(*node.value<int64_t>());
    case TomlType::kNumber:
      if (node.is_integer()) return std::to_string(*node.value<int64_t>());
      if (node.is_floating_point()) {
        char buf[32];
        const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), *node.value<double>());
        return std::string(buf, end);
      }
      return wrong("a number");
    case TomlType::kDurations:
      if (node.is_string()) return *node.value<std::string>();
      if (node.is_array()) {
        std::string joined;
        for (const toml::node& item : *node.as_array()) {
          if (!item.is_string()) return wrong("a string or an array of strings such as \"5s\"");
          if (!joined.empty()) joined += ",";
          joined += *item.value<std::string>();
        }
        return joined;
      }
      return wrong("a string or an array of strings such as \"5s\"");
  }
  return wrong("a string");
}

// One setting's value as the winning source gave it, and that source as an error names it: the
// flag, the variable, or the file. `problem` is set when the file held no value a text could
// stand for; like a bad value, it only matters if no later source overrides it.
struct GivenValue {
  std::string text;
  std::string source;
  std::optional<std::string> problem;
};

// Reads the settings of the TOML file at `path` into `given`. A key that is no setting, or a
// secret in the file, is refused at once: those are mistakes whatever the other sources say.
Status ReadToml(const std::string& path, std::map<std::string, GivenValue>& given) {
  // toml++ reports an unreadable file as a parse error "at line 0"; say what the system said.
  // A folder opens like a file and reads as an empty one: a mistyped --config /etc/pushhook
  // would run on the defaults.
  if (std::ifstream file(path); !file) {
    return InvalidArgument("config file " + path + " cannot be read: " + std::strerror(errno));
  }
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) {
    return InvalidArgument("config file " + path + " is a folder, not a file");
  }
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return InvalidArgument("config file " + path + " line " + std::to_string(where.line) + ": " +
                           std::string(e.description()));
  }
  const std::string source = "config file " + path;
  Status status;
  const auto visit = [&](const toml::table& t, const std::string& prefix, auto& self) -> void {
    for (const auto& [name, node] : t) {
      if (!status.ok()) return;
      const std::string key = prefix + std::string(name.str());
      const auto setting = std::find_if(kSettings.begin(), kSettings.end(),
                                        [&](const Setting& s) { return s.key == key; });
      if (node.is_table() && setting == kSettings.end()) {
        self(*node.as_table(), key + ".", self);
        continue;
      }
      if (setting == kSettings.end() && key == "reporting.aggregates" && node.value_or(false)) {
        continue;  // once a setting, whose default it states: statistics are always kept now
      }
      if (setting == kSettings.end() && key == "reporting.aggregates") {
        status = InvalidArgument(source +
                                 ": reporting.aggregates is no longer a setting: campaign "
                                 "statistics are always kept (remove the line)");
        return;
      }
      if (setting == kSettings.end()) {
        status = InvalidArgument(source + ": unknown key " + key);
        return;
      }
      if (setting->env_only) {
        status = InvalidArgument(source + ": " + key + " is a secret and may only come from " +
                                 EnvName(key));
        return;
      }
      auto text = TomlText(*setting, node);
      if (text.ok()) {
        given[key] = {*text, source, std::nullopt};
      } else {
        given[key] = {"", source, text.status().message()};
      }
    }
  };
  visit(table, "", visit);
  return status;
}

// Error messages quote the text they were given (a TOML parser's "saw '\n'", a multi-line string
// value); a control character there would break the one-line reason of exit code 2.
Status OneLine(const Status& status) {
  std::string text;
  for (const char c : status.message()) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      text.push_back(c);
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    text += "\\x";
    text.push_back(kHex[byte >> 4]);
    text.push_back(kHex[byte & 0xf]);
  }
  return Status(status.code(), std::move(text));
}

}  // namespace

const std::vector<Setting>& Settings() { return kSettings; }

std::string EnvName(std::string_view key) {
  std::string name = "PUSHHOOK_";
  for (char ch : key) {
    name.push_back(ch == '.' ? '_'
                             : static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  }
  return name;
}

model::StatusOr<server::ServeConfig> LoadServeConfig(
    const std::string& config_path, const EnvLookup& env,
    const std::map<std::string, std::string>& flags, bool dev) {
  // Each layer replaces what the one below it gave, and only the value that wins is checked: a
  // bad value that a flag overrides is no error, and an error names where its value was set.
  std::map<std::string, GivenValue> given;
  std::string path = config_path;
  if (path.empty()) path = env("PUSHHOOK_CONFIG").value_or("");
  if (!path.empty()) {
    if (Status s = ReadToml(path, given); !s.ok()) return OneLine(s);
  }
  for (const Setting& setting : kSettings) {
    if (auto value = env(EnvName(setting.key))) {
      given[std::string(setting.key)] = {*value, EnvName(setting.key), std::nullopt};
    }
  }
  for (const auto& flag : flags) {
    // Not a structured binding: clang 14 (the sanitizer and fuzz builds) cannot capture one.
    const std::string& key = flag.first;
    const auto setting = std::find_if(kSettings.begin(), kSettings.end(),
                                      [&](const Setting& s) { return s.key == key; });
    if (setting == kSettings.end()) return OneLine(InvalidArgument("unknown setting " + key));
    given[key] = {flag.second, std::string(setting->flag), std::nullopt};
  }
  // In the order of --help, so that of several bad values the same one is named first.
  server::ServeConfig config;
  for (const Setting& setting : kSettings) {
    const auto it = given.find(std::string(setting.key));
    if (it == given.end()) continue;
    const GivenValue& value = it->second;
    Status s =
        value.problem ? InvalidArgument(*value.problem) : Apply(config, setting.key, value.text);
    if (!s.ok()) {
      // A setting without a flag (retention.*) is given as one only by code; its message names
      // the key.
      return OneLine(
          InvalidArgument(value.source.empty() ? s.message() : value.source + ": " + s.message()));
    }
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    const bool has_cert = !config.tls_cert_file.empty();
    return OneLine(InvalidArgument(
        std::string(has_cert ? "tls.cert_file (--tls-cert) is " + config.tls_cert_file +
                                   " but tls.key_file (--tls-key) is not set"
                             : "tls.key_file (--tls-key) is " + config.tls_key_file +
                                   " but tls.cert_file (--tls-cert) is not set") +
        ": HTTPS needs both"));
  }
  if (dev) {
    config.allow_http = true;
    config.allow_private_destinations = true;
  }
  return config;
}

}  // namespace pushhook::cli
