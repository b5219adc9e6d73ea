#include <signal.h>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // A receiver that hangs up mid-write must cost one attempt, not the process.
  signal(SIGPIPE, SIG_IGN);
  return pushhook::cli::Main(argc, argv);
}
