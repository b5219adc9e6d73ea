#include "server/key_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "model/base64.h"
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

}  // namespace
}  // namespace pushhook::server
