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
#include <functional>
#include <iostream>
#include <map>
#include <memory>

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
  const sigset_t signals = BlockServeSignals();
  const bool tls = !config->tls_cert_file.empty();
  server::App app(std::move(config.value()));
  // Up to here nothing is logged or written, and bad settings (a TLS file, the listen address)
  // are told in one plain line like a bad flag. From the first log line on, stderr holds JSON
  // lines only (DESIGN section 8): fatal errors too, with the exit code their kind gives.
  if (model::Status s = app.Listen(); !s.ok()) {
    if (s.code() == model::StatusCode::kInvalidArgument) return Usage(s.message());
    util::Log(util::LogLevel::kError, "cannot start", {{"error", s.message()}});
    return kExitFailure;
  }
  if (dev) {
    util::Log(util::LogLevel::kWarn,
              "--dev: plain http and private destinations are allowed; do not expose this server",
              {});
  }
  if (model::Status s = app.Start(); !s.ok()) {
    util::Log(util::LogLevel::kError, "cannot start", {{"error", s.message()}});
    // Bad configuration found at start (the data folder, a database that is not this binary's
    // to open, a wrong secrets key) is the operator's to fix: exit 2.
    return s.code() == model::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
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
  options.database = config->DatabaseUrl();
  std::error_code ec;
  std::filesystem::create_directories(config->data_dir, ec);
  auto store = store::OpenStore(options);
  if (!store.ok()) {
    util::Log(util::LogLevel::kError, "migration failed", {{"error", store.status().message()}});
    // A database in use by a running serve, or one that a newer pushhook upgraded, is the
    // operator's to sort out, as serve says too.
    return store.status().code() == model::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  util::Log(util::LogLevel::kInfo, "migrations done", {});
  return 0;
}

// The command-line flags of the settings (DESIGN section 8) on one subcommand: values keyed
// by setting key. Given() is what the command line itself set, which overrides the file and
// the environment.
class SettingFlags {
 public:
  void AddTo(CLI::App& command) {
    // Those without a flag are set in the file or the environment: listed after the options.
    std::string unflagged = "Settings without a flag (TOML key, environment variable):";
    for (const Setting& setting : Settings()) {
      const std::string key(setting.key);
      std::string_view default_text = setting.default_text;
      if (default_text.starts_with('('))
        default_text = default_text.substr(1, default_text.size() - 2);
      if (setting.flag.empty()) {
        unflagged += "\n  " + (setting.env_only ? EnvName(key) : key + ", " + EnvName(key)) +
                     "\n      " + std::string(setting.help) +
                     " (default: " + std::string(default_text) + ")";
        continue;
      }
      const std::string help = std::string(setting.help) +
                               " (default: " + std::string(default_text) + ") [" + key + ", " +
                               EnvName(key) + "]";
      CLI::Option* option;
      if (key == "delivery.allow_http" || key == "delivery.allow_private_destinations") {
        // `--allow-http` alone, or with =true or =false (CLI11 counts a false as -1): a flag
        // may turn off what the file or the environment turned on.
        option = command.add_flag_function(
            std::string(setting.flag),
            [this, key](std::int64_t count) { values_[key] = count > 0 ? "true" : "false"; }, help);
      } else {
        option = command.add_option(std::string(setting.flag), values_[key], help);
      }
      options_.emplace_back(key, option);
    }
    command.footer(unflagged);
  }

  std::map<std::string, std::string> Given() const {
    std::map<std::string, std::string> out;
    for (const auto& [key, option] : options_) {
      if (option->count() > 0) out[key] = values_.at(key);
    }
    return out;
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::pair<std::string, CLI::Option*>> options_;
};

// A subcommand once registered: its CLI11 node, and what runs when the command line names it.
// `run` owns the values that the options were bound to.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

void AddConfigOption(CLI::App& command, std::string& path) {
  command.add_option("--config", path, "TOML configuration file (default: none) [PUSHHOOK_CONFIG]");
}

Command AddServe(CLI::App& app) {
  struct Args {
    std::string config_path;
    SettingFlags flags;
    bool dev = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* serve = app.add_subcommand("serve", "take events and deliver webhooks");
  AddConfigOption(*serve, args->config_path);
  args->flags.AddTo(*serve);
  serve->add_flag("--dev", args->dev,
                  "development: allow http and private destinations (for a local receiver)");
  return {serve, [args] { return Serve(args->config_path, args->flags.Given(), args->dev); }};
}

Command AddMigrate(CLI::App& app) {
  struct Args {
    std::string config_path;
    SettingFlags flags;
  };
  auto args = std::make_shared<Args>();
  CLI::App* migrate = app.add_subcommand("migrate", "create or upgrade the database, then exit");
  AddConfigOption(*migrate, args->config_path);
  args->flags.AddTo(*migrate);
  return {migrate, [args] { return Migrate(args->config_path, args->flags.Given()); }};
}

Command AddReceive(CLI::App& app) {
  struct Args {
    receive::ReceiverOptions options;
    std::string delay;
  };
  auto args = std::make_shared<Args>();
  CLI::App* receive =
      app.add_subcommand("receive", "verify, de-duplicate and store webhooks (the receiving side)");
  receive->add_option("--listen", args->options.listen, "address to listen on, host:port")
      ->capture_default_str();
  receive
      ->add_option("--secret", args->options.secrets,
                   "whsec_ secret to verify with (repeat for rotated secrets; or in "
                   "PUSHHOOK_RECEIVE_SECRET, kept out of the process list)")
      ->envname("PUSHHOOK_RECEIVE_SECRET")
      ->delimiter(' ')
      ->required();
  receive->add_option(
      "--out", args->options.out_path,
      "where to store payloads: *.db for SQLite, anything else for NDJSON, with the webhook "
      "ids stored in <out>.ids so that a restart still drops duplicates (default: none, only "
      "counts)");
  receive->add_option(
      "--delay", args->delay,
      "answer each request this long after it arrives (a slow receiver, e.g. 200ms; "
      "default: at once)");
  receive
      ->add_option("--max-body-bytes", args->options.max_body_bytes,
                   "largest request body taken; a larger one is answered 413 (default: the "
                   "largest batch that serve can send)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30))
      ->capture_default_str();
  receive
      ->add_option("--threads", args->options.threads,
                   "threads that serve HTTP (more help only with many TLS handshakes at once)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  receive->add_option("--tls-cert", args->options.tls_cert_file,
                      "serve HTTPS with this PEM certificate (the chain, leaf first); re-read on "
                      "SIGHUP (default: none, plain HTTP)");
  receive->add_option("--tls-key", args->options.tls_key_file,
                      "the PEM private key of --tls-cert, unencrypted; re-read on SIGHUP "
                      "(default: none)");
  return {receive, [args] {
            if (!args->delay.empty()) {
              auto delay = model::ParseDuration(args->delay);
              if (!delay) {
                return Usage("--delay must be a duration such as 200ms, got '" + args->delay + "'");
              }
              args->options.respond_delay = *delay;
            }
            return receive::RunReceive(args->options);
          }};
}

Command AddStats(CLI::App& app) {
  auto options = std::make_shared<StatsCommandOptions>();
  CLI::App* stats =
      app.add_subcommand("stats", "print a campaign's statistics from a running server");
  stats->add_option("--server", options->server, "the server's base URL")->capture_default_str();
  stats->add_option("--site", options->site, "site id")->required();
  stats->add_option("--cid", options->cid, "campaign id (default: all campaigns)");
  stats->add_option("--reference-id", options->reference_id, "run id (default: every run)");
  stats->add_option("--from", options->from, "start, RFC 3339 or Unix ms (default: all time)");
  stats->add_option("--to", options->to, "end, RFC 3339 or Unix ms (default: no end)");
  stats->add_option("--bucket", options->bucket, "minute, hour or day")->capture_default_str();
  stats->add_option("--ca-file", options->ca_file,
                    "PEM certificates to trust for an https --server, such as a private CA "
                    "(default: the system's)");
  stats->add_option("--group-by", options->group_by,
                    "cid, reference_id, button or a utm_* field (default: no groups)");
  stats->add_option("--token", options->token,
                    "operator or site token (default: PUSHHOOK_ADMIN_TOKEN)");
  return {stats, [options] {
            if (options->token.empty()) {
              options->token = RealEnv("PUSHHOOK_ADMIN_TOKEN").value_or("");
            }
            return RunStatsCommand(*options);
          }};
}

Command AddSend(CLI::App& app) {
  auto options = std::make_shared<SendOptions>();
  CLI::App* send = app.add_subcommand("send", "emit test or load events to a server");
  send->add_option("--server", options->server, "the server's base URL")->capture_default_str();
  send->add_option("--key", options->key, "the site's ingest key")->required();
  // Ranges checked as numbers: a negative count would otherwise wrap to 2^64 - 1.
  send->add_option("--count", options->count, "events to send")
      ->check(Between(1, 1e12, "a whole number of events from 1"))
      ->capture_default_str();
  send->add_option("--rate", options->rate, "requests per second (0: as fast as possible)")
      ->check(Between(0, 1e9, "a number of requests per second, 0 or more"))
      ->capture_default_str();
  send->add_option("--batch", options->batch, "events per request")
      ->check(Between(1, 1e6, "a number of events per request from 1"))
      ->capture_default_str();
  send->add_option("--connections", options->connections, "keep-alive connections")
      ->check(Between(1, 1e4, "a number of connections from 1 to 10000"))
      ->capture_default_str();
  send->add_option("--max-seconds", options->max_seconds, "stop after this long")
      ->check(Between(0.001, 1e9, "a number of seconds above 0"))
      ->capture_default_str();
  send->add_option("--cid", options->cid, "campaign id of the events")->capture_default_str();
  send->add_option("--ca-file", options->ca_file,
                   "PEM certificates to trust for an https --server, such as a private CA "
                   "(default: the system's)");
  send->add_option("--campaigns", options->campaigns,
                   "spread the events over this many campaigns: <cid>-0, <cid>-1, ...")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  send->add_option("--action", options->action, "View, Click or Dismiss")
      ->check(CLI::IsMember({"View", "Click", "Dismiss"}))
      ->capture_default_str();
  return {send, [options] { return RunSendCommand(*options); }};
}

Command AddBackup(CLI::App& app) {
  struct Args {
    BackupOptions options;
    std::string config_path;
    std::map<std::string, std::string> values;  // data_dir and database, by setting key
  };
  auto args = std::make_shared<Args>();
  CLI::App* backup = app.add_subcommand(
      "backup",
      "copy a running server's SQLite store, consistently, into one file (serve on the copy "
      "restores it)");
  backup->add_option("--out", args->options.out, "the file to write")->required();
  backup->add_flag("--force", args->options.force, "replace --out if it exists (default: refuse)");
  backup->add_option("--config", args->config_path,
                     "the TOML configuration file serve uses (default: none) [PUSHHOOK_CONFIG]");
  backup->add_option(
      "--data-dir", args->values["data_dir"],
      "serve's data folder (default: ./pushhook-data) [data_dir, PUSHHOOK_DATA_DIR]");
  backup->add_option("--database", args->values["database"],
                     "serve's database, sqlite://<path> (default: sqlite://<data_dir>/pushhook.db) "
                     "[database, PUSHHOOK_DATABASE]");
  return {backup, [args] {
            std::map<std::string, std::string> flags;
            for (const auto& [key, value] : args->values) {
              if (!value.empty()) flags[key] = value;
            }
            auto config = LoadServeConfig(args->config_path, RealEnv, flags, false);
            if (!config.ok()) return Usage(config.status().message());
            return RunBackupCommand(*config, args->options);
          }};
}

Command AddBeacon(CLI::App& app) {
  auto options = std::make_shared<BeaconCommandOptions>();
  CLI::App* beacon = app.add_subcommand(
      "beacon", "make a signed beacon token for one subscriber of a campaign run (DESIGN 2a)");
  beacon->add_option("--secret", options->secret, "the site's bsec_ beacon secret")->required();
  beacon->add_option("--site", options->site, "site id")->required();
  beacon->add_option("--cid", options->cid, "campaign id")->required();
  beacon->add_option("--reference-id", options->reference_id, "run id (default: \"\")");
  beacon->add_option("--cookie-id", options->cookie_id, "the subscriber's cookie_id")->required();
  CLI::Option* ttl =
      beacon->add_option("--ttl", options->ttl, "how long the token lives, at most 30d")
          ->capture_default_str();
  beacon
      ->add_option("--expires", options->expires,
                   "expiry as Unix seconds, instead of now + ttl (for test vectors; default: now "
                   "+ --ttl)")
      ->excludes(ttl);
  return {beacon, [options] {
            const auto now = std::chrono::system_clock::now().time_since_epoch();
            return RunBeaconCommand(*options,
                                    std::chrono::duration_cast<std::chrono::seconds>(now).count());
          }};
}

Command AddBench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand(
      "bench",
      "run the benchmark harness (bench/run.mjs, see BENCHMARKS.md) against this binary; "
      "everything after `bench` goes to it, e.g. `pushhook bench --smoke`; `bench/run --help` "
      "lists its options");
  bench->prefix_command();
  return {bench, [bench] { return RunBench(bench->remaining()); }};
}

Command AddVersion(CLI::App& app) {
  CLI::App* version = app.add_subcommand(
      "version", "print the version, the commit and the versions of the libraries it runs on");
  return {version, [] { return PrintVersion(); }};
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"pushhook: reporting webhooks for web-push campaigns"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pushhook " PUSHHOOK_VERSION " (" PUSHHOOK_COMMIT ")");
  const Command commands[] = {AddServe(app),  AddMigrate(app), AddReceive(app),
                              AddStats(app),  AddSend(app),    AddBackup(app),
                              AddBeacon(app), AddBench(app),   AddVersion(app)};

  // A first word that is no subcommand says so (CLI11 would say only that one is required).
  const auto is_subcommand = [&](std::string_view name) {
    return std::any_of(std::begin(commands), std::end(commands),
                       [&](const Command& command) { return command.app->get_name() == name; });
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

  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return Usage("a subcommand is required: " + SubcommandNames(app));
}

}  // namespace pushhook::cli
