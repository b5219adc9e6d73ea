#include "cli/cli.h"

int main(int argc, char** argv) { return pushhook::cli::Main(argc, argv); }
