#include <signal.h>
#include <sys/stat.h>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // A receiver that hangs up mid-write must cost one attempt, not the process.
  signal(SIGPIPE, SIG_IGN);
  // What pushhook writes (the database and its WAL, the key and token files, backups, what
  // `receive` stores) holds events and secrets: for its own user only, whatever the shell's
  // umask (the packaged unit sets UMask=0077 too).
  umask(umask(0) | S_IRWXG | S_IRWXO);
  return pushhook::cli::Main(argc, argv);
}
