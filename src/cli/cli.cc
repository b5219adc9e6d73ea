#include "cli/cli.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/version.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "build_info.h"
#include "cli/backup_command.h"
#include "cli/beacon_command.h"
#include "cli/config.h"
#include "cli/send_command.h"
#include "cli/stats_command.h"
#include "model/duration.h"
#include "receive/receiver.h"
#include "server/app.h"
#include "store/open_store.h"
#include "store/store.h"
#include "util/log.h"

namespace pushhook::cli {
namespace {

// A check that an option's value is a number within [min, max], saying so in words.
CLI::Validator Between(double min, double max, const std::string& what) {
  return CLI::Validator(
      [min, max, what](std::string& in) -> std::string {
        double value = 0;
        const auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), value);
        if (ec == std::errc() && end == in.data() + in.size() && value >= min && value <= max) {
          return "";
        }
        return "must be " + what + ", got '" + in + "'";
      },
      what);
}

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::optional<std::string> RealEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

int Usage(const std::string& reason) {
  std::fprintf(stderr, "pushhook: %s\n", reason.c_str());
  return kExitUsage;
}

// `pushhook bench`: runs the repository's benchmark harness (bench/run.mjs, on node) against
// this binary. The harness is found through PUSHHOOK_BENCH_HARNESS, else next to the binary
// (build/pushhook -> bench/run.mjs), else under the current folder.
int RunBench(const std::vector<std::string>& harness_args) {
  std::vector<std::filesystem::path> candidates;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (auto given = RealEnv("PUSHHOOK_BENCH_HARNESS")) {
    candidates.emplace_back(*given);
  } else {
    for (auto dir = self.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path()) {
      candidates.push_back(dir / "bench" / "run.mjs");
    }
    candidates.push_back(std::filesystem::current_path(ec) / "bench" / "run.mjs");
  }
  for (const std::filesystem::path& harness : candidates) {
    if (!std::filesystem::is_regular_file(harness, ec)) continue;
    std::vector<std::string> args = {"node", harness.string()};
    if (!self.empty()) args.insert(args.end(), {"--bin", self.string()});
    args.insert(args.end(), harness_args.begin(), harness_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execvp("node", argv.data());
    std::fprintf(stderr, "pushhook bench: cannot run node: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  std::fprintf(stderr, "pushhook bench: the harness (bench/run.mjs) was not found %s\n",
               RealEnv("PUSHHOOK_BENCH_HARNESS")
                   ? "at PUSHHOOK_BENCH_HARNESS"
                   : "next to this binary or under the current folder; run it from the "
                     "repository, or set PUSHHOOK_BENCH_HARNESS");
  return kExitFailure;
}

// `pushhook version`: what this binary is and what it runs on, one "name value" per line.
int PrintVersion() {
  std::printf("pushhook %s\ncommit %s\n", PUSHHOOK_VERSION, PUSHHOOK_COMMIT);
  for (const auto& [name, version] : store::LibraryVersions()) {
    std::printf("%s %s\n", name.c_str(), version.c_str());
  }
  std::printf("openssl %s\nboost %d.%d.%d\n", OpenSSL_version(OPENSSL_VERSION_STRING),
              BOOST_VERSION / 100'000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
  return 0;
}

// The names of `app`'s subcommands, "serve, migrate, …".
std::string SubcommandNames(CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands({})) {
    out += (out.empty() ? "" : ", ") + sub->get_name();
  }
  return out;
}

// The first --option of `argv` (after the subcommand's name) that `sub` does not know.
std::optional<std::string> UnknownOption(CLI::App& sub, int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (!arg.starts_with("--")) continue;
    const std::string name(arg.substr(0, arg.find('=')));
    if (sub.get_option_no_throw(name) == nullptr) return name;
  }
  return std::nullopt;
}

// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread started after it, so that
// the main thread can wait for them with sigwait while the others never see them.
sigset_t BlockServeSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int Serve(const std::string& config_path, const std::map<std::string, std::string>& flags,
          bool dev) {
  auto config = LoadServeConfig(config_path, RealEnv, flags, dev);
  if (!config.ok()) return Usage(config.status().message());
  if (dev) {
    util::Log(util::LogLevel::kWarn,
              "--dev: plain http and private destinations are allowed; do not expose this server",
              {});
  }
  const sigset_t signals = BlockServeSignals();
  const bool tls = !config->tls_cert_file.empty();
  server::App app(std::move(config.value()));
  if (model::Status s = app.Start(); !s.ok()) {
    // Bad configuration found at start (a TLS file, the data folder) is one line, as any other.
    if (s.code() == model::StatusCode::kInvalidArgument) return Usage(s.message());
    util::Log(util::LogLevel::kError, "cannot start", {{"error", s.message()}});
    return kExitFailure;
  }
  // Under systemd (Type=notify), ready now that it listens; elsewhere NOTIFY_SOCKET is unset and
  // this does nothing.
  sd_notifyf(0, "READY=1\nSTATUS=serving on port %u", static_cast<unsigned>(app.port()));
  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    // SIGHUP re-reads the certificate (after a renewal); it never stops the server.
    if (!tls) {
      util::Log(util::LogLevel::kInfo, "SIGHUP: nothing to reload (not serving HTTPS)", {});
    } else if (model::Status s = app.ReloadTls(); s.ok()) {
      util::Log(util::LogLevel::kInfo, "TLS certificate reloaded", {});
    } else {
      util::Log(util::LogLevel::kError, "TLS reload failed: still serving the previous certificate",
                {{"error", s.message()}});
    }
  }
  sd_notify(0, "STOPPING=1");
  util::Log(util::LogLevel::kInfo, "shutting down",
            {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
  app.Stop();
  util::Log(util::LogLevel::kInfo, "stopped", {});
  return 0;
}

int Migrate(const std::string& config_path, const std::map<std::string, std::string>& flags) {
  auto config = LoadServeConfig(config_path, RealEnv, flags, false);
  if (!config.ok()) return Usage(config.status().message());
  store::StoreOptions options;
  options.database =
      config->database.empty() ? "sqlite://" + config->data_dir + "/pushhook.db" : config->database;
  std::error_code ec;
  std::filesystem::create_directories(config->data_dir, ec);
  auto store = store::OpenStore(options);
  if (!store.ok()) {
    util::Log(util::LogLevel::kError, "migration failed", {{"error", store.status().message()}});
    return kExitFailure;
  }
  util::Log(util::LogLevel::kInfo, "migrations done", {});
  return 0;
}

// Adds a flag for each setting that has one; values land in `values` keyed by setting key.
void AddSettingFlags(CLI::App& command, std::map<std::string, std::string>& values,
                     std::vector<std::pair<std::string, CLI::Option*>>& options) {
  for (const Setting& setting : Settings()) {
    if (setting.flag.empty()) continue;
    const std::string key(setting.key);
    std::string_view default_text = setting.default_text;
    if (default_text.starts_with('('))
      default_text = default_text.substr(1, default_text.size() - 2);
    const std::string help = std::string(setting.help) + " (default: " + std::string(default_text) +
                             ") [" + key + ", " + EnvName(key) + "]";
    CLI::Option* option;
    if (key == "delivery.allow_http" || key == "delivery.allow_private_destinations") {
      // `--allow-http` alone, or with =true or =false (CLI11 counts a false as -1): a flag
      // may turn off what the file or the environment turned on.
      option = command.add_flag_function(
          std::string(setting.flag),
          [&values, key](std::int64_t count) { values[key] = count > 0 ? "true" : "false"; }, help);
    } else {
      option = command.add_option(std::string(setting.flag), values[key], help);
    }
    options.emplace_back(key, option);
  }
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"pushhook: reporting webhooks for web-push campaigns"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pushhook " PUSHHOOK_VERSION " (" PUSHHOOK_COMMIT ")");

  std::string config_path;
  std::map<std::string, std::string> flag_values;
  std::vector<std::pair<std::string, CLI::Option*>> flag_options;
  bool dev = false;
  CLI::App* serve = app.add_subcommand("serve", "take events and deliver webhooks");
  serve->add_option("--config", config_path,
                    "TOML configuration file (default: none) [PUSHHOOK_CONFIG]");
  AddSettingFlags(*serve, flag_values, flag_options);
  serve->add_flag("--dev", dev,
                  "development: allow http and private destinations (for a local receiver)");

  std::string migrate_config;
  std::map<std::string, std::string> migrate_values;
  std::vector<std::pair<std::string, CLI::Option*>> migrate_options;
  CLI::App* migrate = app.add_subcommand("migrate", "create or upgrade the database, then exit");
  migrate->add_option("--config", migrate_config,
                      "TOML configuration file (default: none) [PUSHHOOK_CONFIG]");
  AddSettingFlags(*migrate, migrate_values, migrate_options);

  receive::ReceiverOptions receive_options;
  std::string tolerance = "5m";
  CLI::App* receive =
      app.add_subcommand("receive", "verify, de-duplicate and store webhooks (the receiving side)");
  receive->add_option("--listen", receive_options.listen, "address to listen on, host:port")
      ->capture_default_str();
  receive
      ->add_option("--secret", receive_options.secrets,
                   "whsec_ secret to verify with (repeat for rotated secrets)")
      ->required();
  receive->add_option(
      "--out", receive_options.out_path,
      "where to store payloads: *.db for SQLite, anything else for NDJSON, with the webhook "
      "ids stored in <out>.ids so that a restart still drops duplicates (default: none, only "
      "counts)");
  std::string receive_delay;
  receive->add_option(
      "--delay", receive_delay,
      "answer each request this long after it arrives (a slow receiver, e.g. 200ms; "
      "default: at once)");
  receive->add_option("--tls-cert", receive_options.tls_cert_file,
                      "serve HTTPS with this PEM certificate (the chain, leaf first); re-read on "
                      "SIGHUP (default: none, plain HTTP)");
  receive->add_option("--tls-key", receive_options.tls_key_file,
                      "the PEM private key of --tls-cert, unencrypted; re-read on SIGHUP "
                      "(default: none)");

  StatsCommandOptions stats_options;
  CLI::App* stats =
      app.add_subcommand("stats", "print a campaign's statistics from a running server");
  stats->add_option("--server", stats_options.server, "the server's base URL")
      ->capture_default_str();
  stats->add_option("--site", stats_options.site, "site id")->required();
  stats->add_option("--cid", stats_options.cid, "campaign id (default: all campaigns)");
  stats->add_option("--reference-id", stats_options.reference_id, "run id (default: every run)");
  stats->add_option("--from", stats_options.from, "start, RFC 3339 or Unix ms (default: all time)");
  stats->add_option("--to", stats_options.to, "end, RFC 3339 or Unix ms (default: no end)");
  stats->add_option("--bucket", stats_options.bucket, "minute, hour or day")->capture_default_str();
  stats->add_option("--group-by", stats_options.group_by,
                    "cid, reference_id, button or a utm_* field (default: no groups)");
  stats->add_option("--token", stats_options.token,
                    "operator or site token (default: PUSHHOOK_ADMIN_TOKEN)");

  SendOptions send_options;
  CLI::App* send = app.add_subcommand("send", "emit test or load events to a server");
  send->add_option("--server", send_options.server, "the server's base URL")->capture_default_str();
  send->add_option("--key", send_options.key, "the site's ingest key")->required();
  // Ranges checked as numbers: a negative count would otherwise wrap to 2^64 - 1.
  send->add_option("--count", send_options.count, "events to send")
      ->check(Between(1, 1e12, "a whole number of events from 1"))
      ->capture_default_str();
  send->add_option("--rate", send_options.rate, "requests per second (0: as fast as possible)")
      ->check(Between(0, 1e9, "a number of requests per second, 0 or more"))
      ->capture_default_str();
  send->add_option("--batch", send_options.batch, "events per request")
      ->check(Between(1, 1e6, "a number of events per request from 1"))
      ->capture_default_str();
  send->add_option("--connections", send_options.connections, "keep-alive connections")
      ->check(Between(1, 1e4, "a number of connections from 1 to 10000"))
      ->capture_default_str();
  send->add_option("--max-seconds", send_options.max_seconds, "stop after this long")
      ->check(Between(0.001, 1e9, "a number of seconds above 0"))
      ->capture_default_str();
  send->add_option("--cid", send_options.cid, "campaign id of the events")->capture_default_str();
  send->add_option("--campaigns", send_options.campaigns,
                   "spread the events over this many campaigns: <cid>-0, <cid>-1, ...")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  send->add_option("--action", send_options.action, "View, Click or Dismiss")
      ->check(CLI::IsMember({"View", "Click", "Dismiss"}))
      ->capture_default_str();

  BackupOptions backup_options;
  std::string backup_config;
  std::map<std::string, std::string> backup_values;
  CLI::App* backup = app.add_subcommand(
      "backup",
      "copy a running server's SQLite store, consistently, into one file (serve on the copy "
      "restores it)");
  backup->add_option("--out", backup_options.out, "the file to write")->required();
  backup->add_flag("--force", backup_options.force, "replace --out if it exists (default: refuse)");
  backup->add_option("--config", backup_config,
                     "the TOML configuration file serve uses (default: none) [PUSHHOOK_CONFIG]");
  backup->add_option(
      "--data-dir", backup_values["data_dir"],
      "serve's data folder (default: ./pushhook-data) [data_dir, PUSHHOOK_DATA_DIR]");
  backup->add_option("--database", backup_values["database"],
                     "serve's database, sqlite://<path> (default: sqlite://<data_dir>/pushhook.db) "
                     "[database, PUSHHOOK_DATABASE]");

  BeaconCommandOptions beacon_options;
  CLI::App* beacon = app.add_subcommand(
      "beacon", "make a signed beacon token for one subscriber of a campaign run (DESIGN 2a)");
  beacon->add_option("--secret", beacon_options.secret, "the site's bsec_ beacon secret")
      ->required();
  beacon->add_option("--site", beacon_options.site, "site id")->required();
  beacon->add_option("--cid", beacon_options.cid, "campaign id")->required();
  beacon->add_option("--reference-id", beacon_options.reference_id, "run id (default: \"\")");
  beacon->add_option("--cookie-id", beacon_options.cookie_id, "the subscriber's cookie_id")
      ->required();
  beacon->add_option("--ttl", beacon_options.ttl, "how long the token lives, at most 30d")
      ->capture_default_str();
  beacon->add_option(
      "--expires", beacon_options.expires,
      "expiry as Unix seconds, instead of now + ttl (for test vectors; default: now + "
      "--ttl)");

  CLI::App* bench = app.add_subcommand(
      "bench",
      "run the benchmark harness (bench/run.mjs, see BENCHMARKS.md) against this binary; "
      "everything after `bench` goes to it, e.g. `pushhook bench --smoke`; `bench/run --help` "
      "lists its options");
  bench->prefix_command();

  CLI::App* version = app.add_subcommand(
      "version", "print the version, the commit and the versions of the libraries it runs on");

  // A first word that is no subcommand says so (CLI11 would say only that one is required).
  const auto is_subcommand = [&](std::string_view name) {
    const auto subs = app.get_subcommands({});
    return std::any_of(subs.begin(), subs.end(),
                       [&](const CLI::App* sub) { return sub->get_name() == name; });
  };
  if (argc > 1 && argv[1][0] != '-' && !is_subcommand(argv[1])) {
    return Usage("unknown subcommand '" + std::string(argv[1]) + "'; the subcommands are " +
                 SubcommandNames(app) + " (pushhook --help says more)");
  }
  if (argc == 1) {
    return Usage("a subcommand is required: " + SubcommandNames(app) +
                 " (pushhook --help says more)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RequiredError& e) {
    // CLI11 looks for missing options before unknown ones; a misspelt option is the likelier
    // mistake, and the reason for the missing one.
    if (is_subcommand(argv[1])) {
      if (auto unknown = UnknownOption(*app.get_subcommand(argv[1]), argc, argv)) {
        return Usage("The following argument was not expected: " + *unknown);
      }
    }
    return Usage(e.what());
  } catch (const CLI::ParseError& e) {
    return Usage(e.what());
  }

  // Only flags given on the command line override the file and the environment.
  const auto given = [](const std::map<std::string, std::string>& values,
                        const std::vector<std::pair<std::string, CLI::Option*>>& options) {
    std::map<std::string, std::string> out;
    for (const auto& [key, option] : options) {
      if (option->count() > 0) out[key] = values.at(key);
    }
    return out;
  };
  if (serve->parsed()) return Serve(config_path, given(flag_values, flag_options), dev);
  if (migrate->parsed()) return Migrate(migrate_config, given(migrate_values, migrate_options));
  if (receive->parsed()) {
    if (!receive_delay.empty()) {
      auto delay = model::ParseDuration(receive_delay);
      if (!delay)
        return Usage("--delay must be a duration such as 200ms, got '" + receive_delay + "'");
      receive_options.respond_delay = *delay;
    }
    return receive::RunReceive(receive_options);
  }
  if (send->parsed()) return RunSendCommand(send_options);
  if (backup->parsed()) {
    std::map<std::string, std::string> flags;
    for (const auto& [key, value] : backup_values) {
      if (!value.empty()) flags[key] = value;
    }
    auto config = LoadServeConfig(backup_config, RealEnv, flags, false);
    if (!config.ok()) return Usage(config.status().message());
    return RunBackupCommand(*config, backup_options);
  }
  if (beacon->parsed()) {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return RunBeaconCommand(beacon_options,
                            std::chrono::duration_cast<std::chrono::seconds>(now).count());
  }
  if (bench->parsed()) return RunBench(bench->remaining());
  if (stats->parsed()) {
    if (stats_options.token.empty())
      stats_options.token = RealEnv("PUSHHOOK_ADMIN_TOKEN").value_or("");
    return RunStatsCommand(stats_options);
  }
  if (version->parsed()) return PrintVersion();
  return Usage("a subcommand is required: " + SubcommandNames(app));
}

}  // namespace pushhook::cli
