#include "server/key_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/base64.h"
#include "model/random.h"
#include "model/secret_box.h"
#include "util/log.h"

namespace pushhook::server {
namespace {

using util::Log;
using util::LogLevel;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// The first line of `path`, or "" when it is missing or empty.
std::string ReadFirstLine(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

}  // namespace

model::Status WriteFileAtomically(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  // Undoes the half-written file; the error being returned is the one that matters.
  const auto abandon = [&tmp](int fd, model::Status error) {
    if (fd >= 0) static_cast<void>(::close(fd));
    static_cast<void>(::unlink(tmp.c_str()));
    return error;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return model::Internal(Errno("cannot write " + tmp));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return abandon(fd, model::Internal(Errno("cannot write " + tmp)));
    written += static_cast<size_t>(n);
  }
  // The umask may have narrowed the mode at creation; a file made earlier keeps its own mode.
  if (::fchmod(fd, 0600) != 0 || ::fsync(fd) != 0) {
    return abandon(fd, model::Internal(Errno("cannot write " + tmp)));
  }
  // close can report a write that failed late (on NFS, for one).
  if (::close(fd) != 0) return abandon(-1, model::Internal(Errno("cannot write " + tmp)));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return abandon(-1, model::Internal(Errno("cannot rename " + tmp + " to " + path)));
  }
  // The rename is durable once the folder that holds the name is. A folder that cannot be
  // opened or synced (some file systems refuse fsync on one) leaves the file itself intact.
  const std::string folder = std::filesystem::path(path).parent_path().string();
  const int dir = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    static_cast<void>(::fsync(dir));
    static_cast<void>(::close(dir));
  }
  return model::Status::Ok();
}

// 128 bits of base64url-like text; the tokens pushhook makes are longer.
constexpr size_t kShortestGoodToken = 22;

model::StatusOr<std::string> LoadOrCreateOperatorToken(const std::string& configured,
                                                       const std::string& data_dir, bool* made) {
  if (made != nullptr) *made = false;
  if (!configured.empty()) {
    // It opens every site: one short enough to guess is worth a word at each start.
    if (configured.size() < kShortestGoodToken) {
      Log(LogLevel::kWarn,
          "the operator token (PUSHHOOK_ADMIN_TOKEN) is short enough to guess; use " +
              std::to_string(kShortestGoodToken) +
              " or more random characters, or leave it unset and one is made",
          {{"length", std::to_string(configured.size())}});
    }
    return configured;
  }
  const std::filesystem::path path = std::filesystem::path(data_dir) / "admin-token";
  if (std::string token = ReadFirstLine(path); !token.empty()) {
    Log(LogLevel::kInfo, "operator token read from file", {{"path", path.string()}});
    return token;
  }
  const std::string token = "pha_" + model::RandomToken(40);
  if (model::Status s = WriteFileAtomically(path.string(), token + "\n"); !s.ok()) return s;
  if (made != nullptr) *made = true;
  return token;
}

model::StatusOr<std::string> LoadOrCreateSecretsKey(const std::string& configured_base64,
                                                    const std::string& data_dir, bool* made) {
  if (made != nullptr) *made = false;
  std::string encoded = configured_base64;
  const std::filesystem::path path = std::filesystem::path(data_dir) / "secrets-key";
  if (encoded.empty()) encoded = ReadFirstLine(path);
  if (encoded.empty()) {
    encoded = model::Base64Encode(model::RandomBytes(model::SecretBox::kKeyBytes));
    if (model::Status s = WriteFileAtomically(path.string(), encoded + "\n"); !s.ok()) return s;
    if (made != nullptr) *made = true;
  }
  auto key = model::Base64Decode(encoded);
  if (!key || key->size() != model::SecretBox::kKeyBytes) {
    return model::InvalidArgument("secrets_key must be base64 of 32 bytes");
  }
  return *key;
}

}  // namespace pushhook::server
