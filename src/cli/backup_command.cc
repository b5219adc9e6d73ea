#include "cli/backup_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "model/random.h"
#include "store/sqlite/sqlite_store.h"

namespace pushhook::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kPagesPerStep = 256;

int Fail(int code, const std::string& reason) {
  std::fprintf(stderr, "pushhook backup: %s\n", reason.c_str());
  return code;
}

std::string Mebibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// Shows progress on stderr: a bar redrawn in place on a terminal, else a line at each tenth.
class ProgressView {
 public:
  ProgressView() : terminal_(::isatty(STDERR_FILENO) == 1) {}

  void Show(const store::sqlite::BackupProgress& p) {
    if (p.total <= 0) return;
    const int percent = static_cast<int>(int64_t{p.copied} * 100 / p.total);
    const std::string sizes = Mebibytes(int64_t{p.copied} * p.page_size) + " of " +
                              Mebibytes(int64_t{p.total} * p.page_size);
    if (terminal_) {
      constexpr int kWidth = 30;
      const int filled = percent * kWidth / 100;
      std::fprintf(
          stderr, "\r[%s%s] %3d%% %s", std::string(static_cast<size_t>(filled), '#').c_str(),
          std::string(static_cast<size_t>(kWidth - filled), ' ').c_str(), percent, sizes.c_str());
      if (p.copied == p.total) std::fputc('\n', stderr);
    } else if (percent / 10 > last_tenth_ || p.copied == p.total) {
      last_tenth_ = percent / 10;
      std::fprintf(stderr, "pushhook backup: %d%% (%s)\n", percent, sizes.c_str());
    }
  }

 private:
  const bool terminal_;
  int last_tenth_ = -1;
};

bool SyncDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  static_cast<void>(::close(fd));  // read-only: nothing to lose
  return ok;
}

}  // namespace

int RunBackupCommand(const server::ServeConfig& config, const BackupOptions& options) {
  // Refused before the copy: an empty name would be found wanting only at the rename, after the
  // whole database was read.
  if (options.out.empty()) return Fail(kExitUsage, "--out must be a file's path, got ''");
  const std::string database = config.DatabaseUrl();
  std::string_view source = database;
  if (source.starts_with("postgres://") || source.starts_with("postgresql://")) {
    return Fail(kExitUsage,
                "the store is PostgreSQL: back it up with pg_dump (README, \"Backup and "
                "restore\")");
  }
  if (source.starts_with("sqlite://")) source.remove_prefix(std::string_view("sqlite://").size());
  const std::filesystem::path out(options.out);
  std::error_code ec;
  if (std::filesystem::is_directory(out, ec)) {
    return Fail(kExitUsage, "--out " + options.out + " is a folder; name the file to write");
  }
  if (std::filesystem::exists(out, ec) && !options.force) {
    return Fail(kExitUsage, options.out + " exists; --force replaces it");
  }
  if (!std::filesystem::exists(std::string(source), ec)) {
    return Fail(kExitUsage, "no database at " + std::string(source) +
                                " (is --data-dir or --database the one serve uses?)");
  }
  // Replacing the database or its log with the copy would unlink what a running serve writes
  // to: everything it acknowledged afterwards would be gone at its next start.
  for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"}) {
    if (std::filesystem::equivalent(out, std::string(source) + suffix, ec)) {
      return Fail(kExitUsage, "--out " + options.out + " would replace the database " +
                                  std::string(source) +
                                  " or one of its files; write the copy to another file");
    }
  }
  const std::filesystem::path folder = out.parent_path().empty() ? "." : out.parent_path();
  if (!std::filesystem::is_directory(folder, ec)) {
    return Fail(kExitUsage, "--out " + options.out + ": there is no folder " + folder.string());
  }
  // Written beside the destination, then renamed: a reader of --out never sees half a copy.
  const std::filesystem::path partial = out.string() + ".partial-" + model::RandomToken(8);
  const auto started = std::chrono::steady_clock::now();
  ProgressView view;
  store::sqlite::BackupProgress last;
  model::Status s = store::sqlite::Backup(std::string(source), partial.string(), kPagesPerStep,
                                          [&](const store::sqlite::BackupProgress& p) {
                                            last = p;
                                            view.Show(p);
                                          });
  if (s.ok()) {
    // A log left beside a file this replaces would be replayed into the copy when it is opened.
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
      std::filesystem::remove(out.string() + suffix, ec);
    }
    std::filesystem::rename(partial, out, ec);
    if (ec) s = model::Internal("cannot rename the copy to " + options.out + ": " + ec.message());
  }
  if (!s.ok()) {
    std::filesystem::remove(partial, ec);
    // A source that is not a database is the operator's to fix, as serve says too.
    return Fail(s.code() == model::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure,
                s.message());
  }
  if (!SyncDirectory(out.parent_path())) {
    return Fail(kExitFailure, "cannot sync the folder of " + options.out);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "pushhook backup: wrote %s (%s, %d pages) in %.1f s\n", options.out.c_str(),
               Mebibytes(int64_t{last.total} * last.page_size).c_str(), last.total, seconds);
  // Starting serve on the copy restores it only with what is kept beside the database.
  const std::filesystem::path data_dir(config.data_dir);
  if (config.secrets_key.empty() && std::filesystem::exists(data_dir / "secrets-key", ec)) {
    std::fprintf(stderr,
                 "pushhook backup: keep %s with the copy: it seals the endpoint secrets in it, "
                 "and serve refuses the copy without it\n",
                 (data_dir / "secrets-key").c_str());
  } else if (!config.secrets_key.empty()) {
    std::fprintf(stderr,
                 "pushhook backup: the endpoint secrets in the copy are sealed with the secrets "
                 "key given to this command (secrets_key): serve needs the same one\n");
  }
  if (config.admin_token.empty() && std::filesystem::exists(data_dir / "admin-token", ec)) {
    std::fprintf(stderr,
                 "pushhook backup: the operator token is not in the copy: keep %s too, or set "
                 "PUSHHOOK_ADMIN_TOKEN where it is restored\n",
                 (data_dir / "admin-token").c_str());
  }
  return 0;
}

}  // namespace pushhook::cli
