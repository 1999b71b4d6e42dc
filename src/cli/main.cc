// cli/main.cc - the `uzram` executable.
#include <unistd.h>

#include "cli/cli.h"

int main(int argc, char** argv) {
  uzram::cli::Io io;
  io.progress = ::isatty(STDERR_FILENO) == 1;
  return uzram::cli::run(argc, argv, io);
}
