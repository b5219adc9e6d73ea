#include "server/key_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "model/base64.h"
#include "server/app.h"
#include "util/testing/file_size_limit.h"

namespace pushhook::server {
namespace {

namespace fs = std::filesystem;

class KeyFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pushhook-keyfiles-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Read(const std::string& name) {
    std::ifstream in(dir_ / name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
};

// The disk fills up (here: a file size limit) while the key is written. The key file must then
// not exist at all, so the next start makes a new key, rather than hold a truncated key that
// stops every later start with "secrets_key must be base64 of 32 bytes".
TEST_F(KeyFilesTest, AWriteCutShortLeavesNoKeyFileBehind) {
  util::testing::ScopedFileSizeLimit full_disk(10);
  auto key = LoadOrCreateSecretsKey("", dir_.string());
  full_disk.Lift();

  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), model::StatusCode::kInternal);
  EXPECT_NE(key.status().message().find("cannot write " + (dir_ / "secrets-key.tmp").string()),
            std::string::npos)
      << key.status().message();
  EXPECT_FALSE(fs::exists(dir_ / "secrets-key"));
  EXPECT_FALSE(fs::exists(dir_ / "secrets-key.tmp"));

  auto again = LoadOrCreateSecretsKey("", dir_.string());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->size(), 32u);
}

TEST_F(KeyFilesTest, AMadeKeyIsPrivateAndReadBackUnchanged) {
  auto made = LoadOrCreateSecretsKey("", dir_.string());
  ASSERT_TRUE(made.ok()) << made.status().message();
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "secrets-key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Read("secrets-key"), model::Base64Encode(*made) + "\n");
  auto read = LoadOrCreateSecretsKey("", dir_.string());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, *made);
}

TEST_F(KeyFilesTest, AConfiguredKeyWinsAndAMalformedOneIsRefused) {
  const std::string key(32, '\x07');
  auto configured = LoadOrCreateSecretsKey(model::Base64Encode(key), dir_.string());
  ASSERT_TRUE(configured.ok());
  EXPECT_EQ(*configured, key);
  EXPECT_FALSE(fs::exists(dir_ / "secrets-key"));

  auto short_key = LoadOrCreateSecretsKey(model::Base64Encode("too short"), dir_.string());
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.status().code(), model::StatusCode::kInvalidArgument);
  EXPECT_EQ(short_key.status().message(), "secrets_key must be base64 of 32 bytes");
}

TEST_F(KeyFilesTest, TheOperatorTokenIsMadeOnceAndKept) {
  auto made = LoadOrCreateOperatorToken("", dir_.string());
  ASSERT_TRUE(made.ok()) << made.status().message();
  EXPECT_EQ(made->rfind("pha_", 0), 0u);
  EXPECT_EQ(made->size(), 44u);
  EXPECT_EQ(Read("admin-token"), *made + "\n");
  auto read = LoadOrCreateOperatorToken("", dir_.string());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, *made);
  auto configured = LoadOrCreateOperatorToken("pha_configured", dir_.string());
  ASSERT_TRUE(configured.ok());
  EXPECT_EQ(*configured, "pha_configured");
}

TEST_F(KeyFilesTest, MadeSaysWhetherTheCallWroteANewFile) {
  bool made = false;
  ASSERT_TRUE(LoadOrCreateOperatorToken("", dir_.string(), &made).ok());
  EXPECT_TRUE(made);
  ASSERT_TRUE(LoadOrCreateOperatorToken("", dir_.string(), &made).ok());
  EXPECT_FALSE(made);
  ASSERT_TRUE(LoadOrCreateOperatorToken("pha_configured", dir_.string(), &made).ok());
  EXPECT_FALSE(made);
  ASSERT_TRUE(LoadOrCreateSecretsKey("", dir_.string(), &made).ok());
  EXPECT_TRUE(made);
  ASSERT_TRUE(LoadOrCreateSecretsKey("", dir_.string(), &made).ok());
  EXPECT_FALSE(made);
}

// README: a database that cannot start leaves no new key behind. A start that fails (here on a
// file that is no database) takes back the key files it made; one that was there before stays.
TEST_F(KeyFilesTest, AStartThatFailsTakesBackTheKeyFilesItMadeAndOnlyThose) {
  const fs::path db = dir_ / "pushhook.db";
  std::ofstream(db) << "these are notes, not a database\n";
  ServeConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir_.string();
  {
    App app(config);
    const model::Status started = app.Start();
    EXPECT_EQ(started.code(), model::StatusCode::kInvalidArgument);
    EXPECT_EQ(started.message(),
              db.string() + " is not an SQLite database (is it the file serve uses?)");
  }
  EXPECT_FALSE(fs::exists(dir_ / "secrets-key"));
  EXPECT_FALSE(fs::exists(dir_ / "admin-token"));

  std::ofstream(dir_ / "admin-token") << "pha_kept\n";
  {
    App app(config);
    EXPECT_EQ(app.Start().code(), model::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Read("admin-token"), "pha_kept\n");
  EXPECT_FALSE(fs::exists(dir_ / "secrets-key"));

  // On a database it can open, the start keeps what it made.
  fs::remove(db);
  {
    App app(config);
    const model::Status started = app.Start();
    ASSERT_TRUE(started.ok()) << started.message();
    app.Stop();
  }
  EXPECT_EQ(Read("admin-token"), "pha_kept\n");
  EXPECT_TRUE(fs::exists(dir_ / "secrets-key"));
}

}  // namespace
}  // namespace pushhook::server
