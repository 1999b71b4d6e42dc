// cli/cli_testing.h - helpers for the CLI tests: a temporary directory, running `uzram`
// in-process with captured stdout/stderr, image builders, and a tiny JSON field reader.
#ifndef UZRAM_TESTS_CLI_CLI_TESTING_H_
#define UZRAM_TESTS_CLI_CLI_TESTING_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "testing/temp_dir.h"
#include "util/random.h"

namespace uzram::testing {

struct CliResult {
  int status = -1;
  std::string out, err;
};

// Runs `uzram ARGS...` in this process (no progress bar).
inline CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "uzram");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  char *obuf = nullptr, *ebuf = nullptr;
  std::size_t olen = 0, elen = 0;
  cli::Io io;
  io.out = open_memstream(&obuf, &olen);
  io.err = open_memstream(&ebuf, &elen);
  CliResult r;
  r.status = cli::run(static_cast<int>(argv.size()), argv.data(), io);
  std::fclose(io.out);
  std::fclose(io.err);
  r.out.assign(obuf, olen);
  r.err.assign(ebuf, elen);
  std::free(obuf);
  std::free(ebuf);
  return r;
}

// Block builders: 4096 bytes each.
inline std::string zero_block() { return std::string(4096, '\0'); }
inline std::string word_block(std::uint64_t word) {
  std::string b(4096, '\0');
  for (std::size_t i = 0; i < 4096; i += 8) std::memcpy(&b[i], &word, 8);
  return b;
}
inline std::string random_block(Random& rng) {
  std::string b(4096, '\0');
  for (std::size_t i = 0; i < 4096; i += 8) {
    const std::uint64_t w = rng.next();
    std::memcpy(&b[i], &w, 8);
  }
  return b;
}
// Compressible, never same-filled, never huge: numbered lines of English-like text.
inline std::string text_block(unsigned n) {
  std::string b;
  for (unsigned line = 0; b.size() < 4096; line++) {
    b += "block " + std::to_string(n) + " line " + std::to_string(line) +
         ": the quick brown fox jumps over the lazy dog while zram compresses pages\n";
  }
  b.resize(4096);
  return b;
}

// The number after "KEY": in a JSON document (first occurrence); -1 when absent.
inline long double json_number(const std::string& doc, const std::string& key) {
  const std::string k = "\"" + key + "\": ";
  const std::size_t at = doc.find(k);
  if (at == std::string::npos) return -1;
  return std::strtold(doc.c_str() + at + k.size(), nullptr);
}
inline std::uint64_t json_u64(const std::string& doc, const std::string& key) {
  return static_cast<std::uint64_t>(json_number(doc, key));
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_CLI_CLI_TESTING_H_
