// The `pushhook` command line: subcommands serve, migrate, receive, stats, send, backup, beacon,
// bench and version (cli.cc registers each in an Add… function), each with --help.
// Exit codes (DESIGN section 8): 0 success, 2 bad usage or configuration (with a one-line
// reason on stderr), 1 any other failure.
#pragma once

namespace pushhook::cli {

int Main(int argc, char** argv);

}  // namespace pushhook::cli
