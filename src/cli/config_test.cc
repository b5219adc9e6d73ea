#include "cli/config.h"

#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>

#include "util/testing/temp_dir.h"

namespace pushhook::cli {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class ConfigTest : public ::testing::Test {
 protected:
  std::string WriteToml(const std::string& text) {
    const std::string path = dir_.File("pushhook.toml");
    std::ofstream(path) << text;
    return path;
  }
  // The reason a value given by its flag is refused for ("" when it is taken).
  static std::string FlagReason(const std::string& key, const std::string& value) {
    return LoadServeConfig("", Env({}), {{key, value}}, false).status().message();
  }
  util::testing::TempDir dir_{"pushhook-config"};
};

TEST_F(ConfigTest, DefaultsMatchTheDesign) {
  auto c = LoadServeConfig("", Env({}), {}, false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen, "127.0.0.1:8080");
  EXPECT_EQ(c->data_dir, "./pushhook-data");
  EXPECT_TRUE(c->durability_full);
  EXPECT_EQ(c->retry_schedule.ToString(), "5s,5m,30m,2h,5h,10h,10h");
  EXPECT_EQ(c->delivery_timeout, std::chrono::seconds(15));
  EXPECT_EQ(c->connect_timeout, std::chrono::seconds(5));
  EXPECT_FALSE(c->allow_http);
  EXPECT_FALSE(c->allow_private_destinations);
}

// What --help gives as each setting's default is a value the setting takes, and taking it
// leaves the configuration as the default one (compared where the types allow).
TEST_F(ConfigTest, TheDefaultsHelpShowsAreTheDefaults) {
  auto defaults = LoadServeConfig("", Env({}), {}, false);
  ASSERT_TRUE(defaults.ok());
  for (const Setting& setting : Settings()) {
    ASSERT_FALSE(setting.default_text.empty()) << setting.key;
    if (setting.default_text.starts_with('(')) continue;  // a description, not a value
    auto c = LoadServeConfig(
        "", Env({}), {{std::string(setting.key), std::string(setting.default_text)}}, false);
    ASSERT_TRUE(c.ok()) << setting.key << " = " << setting.default_text << ": "
                        << c.status().message();
    EXPECT_EQ(c->listen, defaults->listen) << setting.key;
    EXPECT_EQ(c->data_dir, defaults->data_dir) << setting.key;
    EXPECT_EQ(c->database_pool, defaults->database_pool) << setting.key;
    EXPECT_EQ(c->lease, defaults->lease) << setting.key;
    EXPECT_EQ(c->durability_full, defaults->durability_full) << setting.key;
    EXPECT_EQ(c->retry_schedule.ToString(), defaults->retry_schedule.ToString()) << setting.key;
    EXPECT_EQ(c->delivery_timeout, defaults->delivery_timeout) << setting.key;
    EXPECT_EQ(c->connect_timeout, defaults->connect_timeout) << setting.key;
    EXPECT_EQ(c->allow_http, defaults->allow_http) << setting.key;
    EXPECT_EQ(c->allow_private_destinations, defaults->allow_private_destinations) << setting.key;
    EXPECT_EQ(c->disable_after, defaults->disable_after) << setting.key;
    EXPECT_EQ(c->circuit.failure_threshold, defaults->circuit.failure_threshold) << setting.key;
    EXPECT_EQ(c->circuit.base_pause, defaults->circuit.base_pause) << setting.key;
    EXPECT_EQ(c->shutdown_grace, defaults->shutdown_grace) << setting.key;
    EXPECT_EQ(c->max_body_bytes, defaults->max_body_bytes) << setting.key;
    EXPECT_EQ(c->max_backlog, defaults->max_backlog) << setting.key;
    EXPECT_EQ(c->ingest_rate_limit, defaults->ingest_rate_limit) << setting.key;
    EXPECT_EQ(c->min_free_disk_bytes, defaults->min_free_disk_bytes) << setting.key;
    EXPECT_EQ(c->header_timeout, defaults->header_timeout) << setting.key;
    EXPECT_EQ(c->body_timeout, defaults->body_timeout) << setting.key;
    EXPECT_EQ(c->retention_delivered, defaults->retention_delivered) << setting.key;
    EXPECT_EQ(c->retention_failed, defaults->retention_failed) << setting.key;
  }
}

TEST_F(ConfigTest, FlagsOverrideEnvironmentOverridesFile) {
  const std::string path = WriteToml(
      "listen = \"127.0.0.1:1\"\ndurability = \"normal\"\n"
      "[delivery]\nretry_schedule = \"1s,2s\"\ntimeout = \"3s\"\nallow_http = true\n");
  auto file_only = LoadServeConfig(path, Env({}), {}, false);
  ASSERT_TRUE(file_only.ok()) << file_only.status().message();
  EXPECT_EQ(file_only->listen, "127.0.0.1:1");
  EXPECT_FALSE(file_only->durability_full);
  EXPECT_EQ(file_only->retry_schedule.ToString(), "1s,2s");
  EXPECT_TRUE(file_only->allow_http);

  auto with_env = LoadServeConfig(
      path, Env({{"PUSHHOOK_LISTEN", "127.0.0.1:2"}, {"PUSHHOOK_DELIVERY_RETRY_SCHEDULE", "4s"}}),
      {}, false);
  ASSERT_TRUE(with_env.ok());
  EXPECT_EQ(with_env->listen, "127.0.0.1:2");
  EXPECT_EQ(with_env->retry_schedule.ToString(), "4s");

  auto with_flags = LoadServeConfig(path, Env({{"PUSHHOOK_LISTEN", "127.0.0.1:2"}}),
                                    {{"listen", "127.0.0.1:3"}}, false);
  ASSERT_TRUE(with_flags.ok());
  EXPECT_EQ(with_flags->listen, "127.0.0.1:3");
  EXPECT_EQ(with_flags->delivery_timeout, std::chrono::seconds(3));
}

// A bad value is no error where a later source overrides it; the value that is used is checked,
// and its error names the flag, the variable or the file that set it.
TEST_F(ConfigTest, OnlyTheValueUsedIsCheckedAndItsErrorNamesItsSource) {
  const std::string path = WriteToml(
      "durability = \"bogus\"\nlisten = \"nowhere:80\"\n[delivery]\ntimeout = \"soon\"\n"
      "allow_http = 2024-01-01\n");
  const auto c = LoadServeConfig(path,
                                 Env({{"PUSHHOOK_DURABILITY", "bogus"},
                                      {"PUSHHOOK_DELIVERY_TIMEOUT", "bogus"},
                                      {"PUSHHOOK_DATA_DIR", ""},
                                      {"PUSHHOOK_LISTEN", "localhost"},
                                      {"PUSHHOOK_DELIVERY_ALLOW_HTTP", "yes"}}),
                                 {{"durability", "normal"},
                                  {"delivery.timeout", "5s"},
                                  {"data_dir", "/srv/ph"},
                                  {"listen", "127.0.0.1:0"}},
                                 false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->durability_full);
  EXPECT_EQ(c->delivery_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c->data_dir, "/srv/ph");
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_TRUE(c->allow_http);

  const auto reason = [&](const std::map<std::string, std::string>& env,
                          const std::map<std::string, std::string>& flags) {
    return LoadServeConfig(path, Env(env), flags, false).status().message();
  };
  const std::map<std::string, std::string> fine_file_values = {
      {"listen", "127.0.0.1:0"}, {"delivery.timeout", "5s"}, {"delivery.allow_http", "true"}};
  EXPECT_EQ(reason({}, fine_file_values),
            "config file " + path + ": durability must be full or normal, got 'bogus'");
  EXPECT_EQ(reason({{"PUSHHOOK_DURABILITY", "full"}},
                   {{"delivery.timeout", "5s"}, {"delivery.allow_http", "true"}}),
            "config file " + path +
                ": listen must be an IP address (or localhost) and a port, "
                "got 'nowhere:80'");
  EXPECT_EQ(reason({{"PUSHHOOK_DURABILITY", "full"}},
                   {{"listen", "127.0.0.1:0"}, {"delivery.allow_http", "true"}}),
            "config file " + path +
                ": delivery.timeout must be a duration such as 500ms, 15s or 7d, got 'soon'");
  EXPECT_EQ(reason({{"PUSHHOOK_DURABILITY", "full"}},
                   {{"listen", "[::1]:0"}, {"delivery.timeout", "5s"}}),
            "config file " + path +
                ": delivery.allow_http must be a boolean (true or false), not a date");
  EXPECT_EQ(
      reason({{"PUSHHOOK_LISTEN", "localhost"}},
             {{"durability", "full"}, {"delivery.timeout", "5s"}, {"delivery.allow_http", "true"}}),
      "PUSHHOOK_LISTEN: listen must be host:port, got 'localhost'");
  EXPECT_EQ(LoadServeConfig("", Env({{"PUSHHOOK_DATA_DIR", ""}}), {}, false).status().message(),
            "PUSHHOOK_DATA_DIR: data_dir must not be empty");
  EXPECT_EQ(LoadServeConfig("", Env({}), {{"listen", "999.1.1.1:80"}}, false).status().message(),
            "--listen: listen must be an IP address (or localhost) and a port, got "
            "'999.1.1.1:80'");
  EXPECT_EQ(LoadServeConfig("", Env({}), {{"data_dir", ""}}, false).status().message(),
            "--data-dir: data_dir must not be empty");

  // A key that is no setting is a typo, not a value to override: still refused.
  const std::string typo = WriteToml("durabilty = \"full\"\n");
  EXPECT_EQ(LoadServeConfig(typo, Env({}), {{"durability", "full"}}, false).status().message(),
            "config file " + typo + ": unknown key durabilty");
}

TEST_F(ConfigTest, DevAllowsHttpAndPrivateDestinations) {
  auto c = LoadServeConfig("", Env({}), {}, true);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->allow_http);
  EXPECT_TRUE(c->allow_private_destinations);
}

TEST_F(ConfigTest, BadValuesGiveOneLineReasons) {
  EXPECT_EQ(LoadServeConfig("", Env({}), {{"durability", "bogus"}}, false).status().message(),
            "--durability: durability must be full or normal, got 'bogus'");
  EXPECT_EQ(LoadServeConfig("", Env({{"PUSHHOOK_DELIVERY_TIMEOUT", "soon"}}), {}, false)
                .status()
                .message(),
            "PUSHHOOK_DELIVERY_TIMEOUT: delivery.timeout must be a duration such as 500ms, 15s "
            "or 7d, got 'soon'");
  // The rest of a database URL can hold a password: only its scheme is quoted.
  const auto database = [](const std::string& value) {
    return LoadServeConfig("", Env({}), {{"database", value}}, false).status().message();
  };
  EXPECT_EQ(database("Postgres://u:Sup3rSecret@127.0.0.1:1/db"),
            "--database: database must be sqlite://<path> or postgres://..., got 'Postgres://...'");
  EXPECT_EQ(database("u:Sup3rSecret@127.0.0.1/db"),
            "--database: database must be sqlite://<path> or postgres://..., got a value that is "
            "not a URL");
  EXPECT_EQ(database("u:pw@h/db?x=file://y"),
            "--database: database must be sqlite://<path> or postgres://..., got a value that is "
            "not a URL");
  EXPECT_EQ(database("pushhook.db"),
            "--database: database must be sqlite://<path> or postgres://..., got 'pushhook.db'");
  const std::string unknown = WriteToml("[delivery]\nretries = 3\n");
  EXPECT_NE(LoadServeConfig(unknown, Env({}), {}, false)
                .status()
                .message()
                .find("unknown key delivery.retries"),
            std::string::npos);
  const std::string secret = WriteToml("admin_token = \"x\"\n");
  EXPECT_NE(LoadServeConfig(secret, Env({}), {}, false)
                .status()
                .message()
                .find("may only come from PUSHHOOK_ADMIN_TOKEN"),
            std::string::npos);
  const std::string broken = WriteToml("listen = \n");
  EXPECT_NE(LoadServeConfig(broken, Env({}), {}, false).status().message().find("line 1"),
            std::string::npos);
  const std::string missing = dir_.File("missing.toml");
  EXPECT_EQ(LoadServeConfig(missing, Env({}), {}, false).status().message(),
            "config file " + missing + " cannot be read: No such file or directory");
}

// The file is typed: a value of another type than its setting's is a mistake to name, not a
// text to read (`data_dir = 5` made a folder "5"; `allow_http = "no"` read as a word).
TEST_F(ConfigTest, FileValuesOfTheWrongTypeAreRefusedNamingBothTypes) {
  const auto reason = [&](const std::string& text) {
    const std::string path = WriteToml(text);
    const auto c = LoadServeConfig(path, Env({}), {}, false);
    if (c.ok()) return std::string("accepted");
    const std::string prefix = "config file " + path + ": ";
    const std::string& message = c.status().message();
    return message.starts_with(prefix) ? message.substr(prefix.size()) : message;
  };
  EXPECT_EQ(reason("data_dir = 5\n"), "data_dir must be a string, not an integer");
  EXPECT_EQ(reason("listen = [\"127.0.0.1:1\"]\n"), "listen must be a string, not an array");
  EXPECT_EQ(reason("[delivery]\nallow_http = \"no\"\n"),
            "delivery.allow_http must be a boolean (true or false), not a string");
  EXPECT_EQ(reason("[delivery]\nallow_private_destinations = 1\n"),
            "delivery.allow_private_destinations must be a boolean (true or false), not an "
            "integer");
  EXPECT_EQ(reason("[delivery]\nallow_http = {a = 1}\n"),
            "delivery.allow_http must be a boolean (true or false), not a table");
  EXPECT_EQ(reason("[ingest]\nmax_body_bytes = \"1048576\"\n"),
            "ingest.max_body_bytes must be an integer, not a string");
  EXPECT_EQ(reason("database_pool = 4.0\n"), "database_pool must be an integer, not a float");
  EXPECT_EQ(reason("[ingest]\nrate_limit = \"5\"\n"),
            "ingest.rate_limit must be a number, not a string");
  EXPECT_EQ(reason("[delivery]\ntimeout = 15\n"),
            "delivery.timeout must be a string, not an integer");
  EXPECT_EQ(reason("[delivery]\nretry_schedule = [5, 10]\n"),
            "delivery.retry_schedule must be a string or an array of strings such as \"5s\", not "
            "an array");
  // The types each setting does take.
  const std::string path = WriteToml(
      "database_pool = 3\n[delivery]\nallow_http = true\nretry_schedule = [\"1s\", \"2m\"]\n"
      "[ingest]\nrate_limit = 2.5\nmax_backlog = 10\n");
  const auto c = LoadServeConfig(path, Env({}), {}, false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->database_pool, 3u);
  EXPECT_TRUE(c->allow_http);
  EXPECT_EQ(c->retry_schedule.ToString(), "1s,2m");
  EXPECT_EQ(c->ingest_rate_limit, 2.5);
  EXPECT_EQ(c->max_backlog, 10u);
  EXPECT_EQ(c->SiteBacklogLimit(), 5u) << "a site's share: half of the backlog, unless set";
  const auto shared =
      LoadServeConfig(path, Env({{"PUSHHOOK_INGEST_MAX_SITE_BACKLOG", "7"}}), {}, false);
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  EXPECT_EQ(shared->SiteBacklogLimit(), 7u);
  const auto refused = LoadServeConfig("", Env({}), {{"ingest.max_site_backlog", "0"}}, false);
  EXPECT_EQ(refused.status().message(),
            "--max-site-backlog: ingest.max_site_backlog must be a positive integer, got '0'");
  // A value the environment or a flag overrides is not read, whatever its type.
  EXPECT_TRUE(
      LoadServeConfig(WriteToml("data_dir = 5\n"), Env({{"PUSHHOOK_DATA_DIR", "/srv"}}), {}, false)
          .ok());
}

TEST_F(ConfigTest, AFolderGivenAsTheFileIsRefused) {
  const std::string folder = dir_.File("etc");
  std::filesystem::create_directory(folder);
  EXPECT_EQ(LoadServeConfig(folder, Env({}), {}, false).status().message(),
            "config file " + folder + " is a folder, not a file");
  EXPECT_EQ(LoadServeConfig("", Env({{"PUSHHOOK_CONFIG", folder}}), {}, false).status().message(),
            "config file " + folder + " is a folder, not a file");
}

TEST_F(ConfigTest, ReasonsSayWhatIsWrongWithAValueOfTheRightForm) {
  const std::vector<std::array<std::string, 3>> cases = {
      {"delivery.timeout", "0ms",
       "--delivery-timeout: delivery.timeout must be longer than zero, got '0ms'"},
      {"retention.delivered", "0d", "retention.delivered must be longer than zero, got '0d'"},
      {"listen", "127.0.0.1:99999",
       "--listen: listen's port must be at most 65535, got '127.0.0.1:99999'"},
      {"listen", "[::1]:123456789012345678901234",
       "--listen: listen's port must be at most 65535, got '[::1]:123456789012345678901234'"},
      {"listen", ":8080", "--listen: listen must be host:port, got ':8080'"},
      {"database", "sqlite://", "--database: database sqlite:// needs a path: sqlite://<path>"},
  };
  for (const auto& [key, value, reason] : cases) EXPECT_EQ(FlagReason(key, value), reason);
}

// Statistics are kept as events arrive, always: the setting that turned them off (to measure
// their cost) lost them for good, so it is no setting any more. A file that states its old
// default still starts.
TEST_F(ConfigTest, StatisticsCannotBeTurnedOff) {
  EXPECT_TRUE(
      LoadServeConfig(WriteToml("[reporting]\naggregates = true\n"), Env({}), {}, false).ok());
  for (const std::string value : {"false", "\"yes\""}) {
    const std::string path = WriteToml("[reporting]\naggregates = " + value + "\n");
    EXPECT_EQ(LoadServeConfig(path, Env({}), {}, false).status().message(),
              "config file " + path +
                  ": reporting.aggregates is no longer a setting: campaign statistics are always "
                  "kept (remove the line)");
  }
}

// Found by fuzz/toml_config_fuzz.cc: the reason quoted the file's own characters, newlines too.
TEST_F(ConfigTest, ReasonsStayOnOneLineWhateverTheFileHolds) {
  for (const std::string text :
       {"delivery.retry_sel = i\n", "durability = \"\"\"\nfull\n\"\"\"\n"}) {
    const auto c = LoadServeConfig(WriteToml(text), Env({}), {}, false);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().message().find_first_of("\r\n"), std::string::npos)
        << c.status().message();
  }
  const auto from_env = LoadServeConfig("", Env({{"PUSHHOOK_DURABILITY", "a\nb"}}), {}, false);
  EXPECT_EQ(from_env.status().message(),
            "PUSHHOOK_DURABILITY: durability must be full or normal, got 'a\\x0ab'");
}

// Found while writing fuzz/toml_config_fuzz.cc (UBSan: signed overflow in circuit_pause * 60;
// a threshold of 2^32 stored as 0; min_free_disk_mb shifted to 0 bytes).
TEST_F(ConfigTest, NumbersThatWouldOverflowAreRefused) {
  const auto refused = [](const std::string& key, const std::string& value) {
    const auto c = LoadServeConfig("", Env({}), {{key, value}}, false);
    return !c.ok() && c.status().code() == model::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused("delivery.circuit_pause", "106751991167d"));
  EXPECT_TRUE(refused("delivery.timeout", "3651d"));
  EXPECT_FALSE(refused("delivery.circuit_pause", "3650d"));
  EXPECT_TRUE(refused("delivery.circuit_threshold", "4294967296"));
  EXPECT_TRUE(refused("delivery.circuit_threshold", "2147483648"));
  EXPECT_FALSE(refused("delivery.circuit_threshold", "2147483647"));
  EXPECT_TRUE(refused("ingest.min_free_disk_mb", "17592186044416"));  // 2^44 MiB = 0 bytes
  EXPECT_FALSE(refused("ingest.min_free_disk_mb", "17592186044415"));
}

TEST_F(ConfigTest, ClusterSettingsTakeTheirThreeFormsAndRefuseNonsense) {
  const std::string file = WriteToml(
      "database = \"postgres://db.internal/pushhook\"\ndatabase_pool = 4\n"
      "[cluster]\nnode_id = \"file-node\"\nlease = \"20s\"\n");
  auto c = LoadServeConfig(file, Env({{"PUSHHOOK_CLUSTER_LEASE", "6s"}}),
                           {{"cluster.node_id", "flag-node"}}, false);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->database, "postgres://db.internal/pushhook");
  EXPECT_EQ(c->database_pool, 4u);
  EXPECT_EQ(c->node_id, "flag-node");
  EXPECT_EQ(c->lease, std::chrono::seconds(6));
  EXPECT_EQ(FlagReason("cluster.lease", "100ms"),
            "--lease: cluster.lease must be at least 300ms, got '100ms'");
  EXPECT_EQ(FlagReason("database_pool", "0"),
            "--database-pool: database_pool must be a positive integer, got '0'");
  EXPECT_EQ(FlagReason("database_pool", "101"),
            "--database-pool: database_pool must be at most 100, got '101'");
  EXPECT_EQ(FlagReason("cluster.node_id", "a b"),
            "--node-id: cluster.node_id must be 1 to 64 characters without spaces, got 'a b'");
}

TEST_F(ConfigTest, AdminTokenComesFromTheEnvironment) {
  auto c = LoadServeConfig("", Env({{"PUSHHOOK_ADMIN_TOKEN", "tok"}}), {}, false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->admin_token, "tok");
  for (const std::string token : {"has space", "tab\there", "new\nline"}) {
    EXPECT_EQ(
        LoadServeConfig("", Env({{"PUSHHOOK_ADMIN_TOKEN", token}}), {}, false).status().message(),
        "PUSHHOOK_ADMIN_TOKEN: admin_token must not hold spaces or control characters");
  }
}

TEST(EnvNameTest, UppercasesAndReplacesDots) {
  EXPECT_EQ(EnvName("delivery.retry_schedule"), "PUSHHOOK_DELIVERY_RETRY_SCHEDULE");
  EXPECT_EQ(EnvName("data_dir"), "PUSHHOOK_DATA_DIR");
}

// tls.cert_file / tls.key_file in the three forms, and both or neither.
TEST_F(ConfigTest, TlsFilesComeInPairsFromAnySource) {
  const std::string path = WriteToml("[tls]\ncert_file = \"/etc/ph/cert.pem\"\n");
  auto from_file_and_env =
      LoadServeConfig(path, Env({{"PUSHHOOK_TLS_KEY_FILE", "/etc/ph/key.pem"}}), {}, false);
  ASSERT_TRUE(from_file_and_env.ok()) << from_file_and_env.status().message();
  EXPECT_EQ(from_file_and_env->tls_cert_file, "/etc/ph/cert.pem");
  EXPECT_EQ(from_file_and_env->tls_key_file, "/etc/ph/key.pem");

  auto flags =
      LoadServeConfig("", Env({}), {{"tls.cert_file", "c.pem"}, {"tls.key_file", "k.pem"}}, false);
  ASSERT_TRUE(flags.ok()) << flags.status().message();
  EXPECT_EQ(flags->tls_cert_file, "c.pem");
  EXPECT_EQ(flags->tls_key_file, "k.pem");

  auto cert_only = LoadServeConfig("", Env({}), {{"tls.cert_file", "c.pem"}}, false);
  EXPECT_EQ(cert_only.status().code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(cert_only.status().message(),
            "tls.cert_file (--tls-cert) is c.pem but tls.key_file (--tls-key) is not set: HTTPS "
            "needs both");
  auto key_only = LoadServeConfig("", Env({{"PUSHHOOK_TLS_KEY_FILE", "k.pem"}}), {}, false);
  EXPECT_EQ(key_only.status().message(),
            "tls.key_file (--tls-key) is k.pem but tls.cert_file (--tls-cert) is not set: HTTPS "
            "needs both");
  auto empty = LoadServeConfig("", Env({{"PUSHHOOK_TLS_CERT_FILE", ""}}), {}, false);
  EXPECT_EQ(empty.status().message(),
            "PUSHHOOK_TLS_CERT_FILE: tls.cert_file must be a file's path, got ''");
}

}  // namespace
}  // namespace pushhook::cli
