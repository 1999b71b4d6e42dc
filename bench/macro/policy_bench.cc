// uzram-policy-bench: the tiering policy's memory reaction (docs/store-postprocessing.md
// #policy) against the same workload without it (docs/benchmarks.md, "Tiering policy").
//
// A store of --size with a backing file as large, lz4, and a mem_limit of half the data's
// compressed size (measured first on a 16384-block sample). A hot set of size/8 moves
// through the device: each step writes the next size/32 blocks (new data) and then does
// size/16 random operations in the hot set, half reads (checked), half rewrites. The
// same seeded sequence runs with `policy off` and with --policy. Each run reports writes
// that failed, memory used, blocks written back, bytes read back from the backing file,
// and then the latency of reads of written-back blocks (a random sample, checked) next to
// reads of blocks still in RAM.
//
//   uzram-policy-bench [--size 4G] [--policy chromeos] [--dir /tmp] [--seed 1]
//                      [--sample 20000]
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "util/random.h"
#include "uzram/store.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kBlock = 4096;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "uzram-policy-bench: %s\n", what.c_str());
  std::exit(1);
}

// Block `idx` at version `ver`: 1280 random bytes, then a short line repeated (about 3x
// with lz4); never same-filled, different for every (idx, ver).
void fill(std::uint64_t idx, std::uint32_t ver, unsigned char* b) {
  std::uint64_t x = (idx + 1) * 0x9E3779B97F4A7C15ull ^ (ver + 1ull) * 0xD1B54A32D192ED03ull;
  for (unsigned i = 0; i < 160; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(b + i * 8, &x, 8);
  }
  char line[64];
  const int n = std::snprintf(line, sizeof line, "block %" PRIu64 " version %u; ", idx, ver);
  for (std::uint64_t off = 1280; off < kBlock; off += static_cast<std::uint64_t>(n)) {
    std::memcpy(b + off, line,
                std::min<std::uint64_t>(static_cast<std::uint64_t>(n), kBlock - off));
  }
}

std::vector<std::uint64_t> numbers(uzram::Store& s, const char* attr) {
  auto t = s.read_attr(attr);
  if (!t) die(std::string("read ") + attr + ": " + t.error().message());
  std::istringstream in(*t);
  std::vector<std::uint64_t> v;
  std::uint64_t x;
  while (in >> x) v.push_back(x);
  return v;
}

void set(uzram::Store& s, const char* attr, const std::string& value) {
  std::string msg;
  if (auto r = s.write_attr(attr, value, &msg); !r)
    die(std::string(attr) + "=" + value + ": " + msg);
}

// compr_data_size per block of the generated data.
double compressed_per_block() {
  constexpr std::uint64_t kSample = 16384;
  auto s = std::move(uzram::Store::create("calibrate").value());
  set(*s, "comp_algorithm", "lz4");
  set(*s, "disksize", std::to_string(kSample * kBlock));
  unsigned char b[kBlock];
  for (std::uint64_t i = 0; i < kSample; i++) {
    fill(i * 7919, 0, b);
    if (!s->write(i, b)) die("calibration write failed");
  }
  return static_cast<double>(numbers(*s, "mm_stat").at(1)) / kSample;
}

struct Latency {
  double mean_us = 0, p50_us = 0, p99_us = 0;
  std::size_t n = 0;
};

Latency summarize(std::vector<double> ns) {
  Latency l;
  l.n = ns.size();
  if (ns.empty()) return l;
  std::sort(ns.begin(), ns.end());
  double sum = 0;
  for (double x : ns) sum += x;
  l.mean_us = sum / static_cast<double>(ns.size()) / 1e3;
  l.p50_us = ns[ns.size() / 2] / 1e3;
  l.p99_us = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)] / 1e3;
  return l;
}

struct RunResult {
  std::uint64_t writes = 0, failed = 0, reads = 0, bad = 0;
  double seconds = 0;
  std::vector<std::uint64_t> mm, bd, ps, io;
  std::uint64_t bd_reads_workload = 0;
  Latency wb_read, ram_read;
};

RunResult run(const std::string& policy, std::uint64_t size, std::uint64_t limit,
              const std::string& dir, std::uint64_t seed, std::size_t sample) {
  std::string tmpl = dir + "/uzram-policy-bench.XXXXXX";
  if (!::mkdtemp(tmpl.data())) die("mkdtemp in " + dir + ": " + std::strerror(errno));
  const std::string backing = tmpl + "/backing";
  {
    std::FILE* f = std::fopen(backing.c_str(), "w");
    if (!f || ::chmod(backing.c_str(), 0600) != 0 || ::truncate(backing.c_str(), size) != 0) {
      die("cannot create " + backing);
    }
    std::fclose(f);
  }
  auto s = std::move(uzram::Store::create("bench").value());
  set(*s, "comp_algorithm", "lz4");
  set(*s, "backing_dev", backing);
  set(*s, "disksize", std::to_string(size));
  set(*s, "mem_limit", std::to_string(limit));
  set(*s, "policy", policy);

  const std::uint64_t n = size / kBlock, window = n / 8, step = window / 4;
  std::vector<std::uint32_t> ver(n, 0);
  std::vector<bool> written(n, false);
  uzram::Random rng(seed);
  unsigned char b[kBlock], got[kBlock];
  RunResult r;
  const auto write = [&](std::uint64_t i, std::uint32_t v) {
    fill(i, v, b);
    r.writes++;
    if (s->write(i, b)) {
      ver[i] = v;
      written[i] = true;
    } else {
      r.failed++;
    }
  };
  const auto check = [&](std::uint64_t i) {
    if (!s->read(i, got)) {
      r.bad++;
      return;
    }
    if (!written[i]) return;
    fill(i, ver[i], b);
    if (std::memcmp(b, got, kBlock) != 0) r.bad++;
  };
  const auto t0 = Clock::now();
  for (std::uint64_t start = 0; start + window <= n; start += step) {
    const std::uint64_t fresh = start == 0 ? 0 : start + window - step;
    for (std::uint64_t i = fresh; i < start + window; i++) write(i, 0);
    for (std::uint64_t k = 0; k < window / 2; k++) {
      const std::uint64_t i = start + rng.uniform(window);
      if (rng.uniform(2)) {
        r.reads++;
        check(i);
      } else {
        write(i, ver[i] + 1);
      }
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.bd_reads_workload = numbers(*s, "bd_stat").at(1);

  // The read-back: a random sample of written-back blocks, and of blocks in RAM.
  set(*s, "policy", "off");  // no new reaction while the sample is taken
  std::vector<std::uint64_t> wb, ram;
  {
    std::istringstream in(s->read_attr("block_state").value());
    std::string line;
    while (std::getline(in, line)) {
      std::uint64_t idx;
      char ts[32], flags[8];
      if (std::sscanf(line.c_str(), "%" SCNu64 " %31s %7s", &idx, ts, flags) != 3) continue;
      (flags[1] == 'w' ? wb : ram).push_back(idx);
    }
  }
  const auto timed = [&](std::vector<std::uint64_t>& idx) {
    for (std::size_t i = idx.size(); i > 1; i--) std::swap(idx[i - 1], idx[rng.uniform(i)]);
    idx.resize(std::min(idx.size(), sample));
    std::vector<double> ns;
    for (std::uint64_t i : idx) {
      const auto a = Clock::now();
      const bool ok = static_cast<bool>(s->read(i, got));
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - a).count());
      fill(i, ver[i], b);
      if (!ok || !written[i] || std::memcmp(b, got, kBlock) != 0) r.bad++;
    }
    return summarize(std::move(ns));
  };
  r.wb_read = timed(wb);
  r.ram_read = timed(ram);
  // After the sample: a reaction that was still running when the workload ended is done.
  r.mm = numbers(*s, "mm_stat");
  r.io = numbers(*s, "io_stat");
  r.ps = numbers(*s, "policy_stat");
  r.bd = numbers(*s, "bd_stat");
  s.reset();
  std::remove(backing.c_str());
  ::rmdir(tmpl.c_str());
  return r;
}

void print(const char* name, const RunResult& r, std::uint64_t limit) {
  const auto mib = [](std::uint64_t x) { return static_cast<double>(x) / 1048576.0; };
  std::printf("%-10s writes %" PRIu64 ", failed %" PRIu64 " (io_stat failed_writes %" PRIu64
              "), reads %" PRIu64 ", bad %" PRIu64 ", %.1f s\n",
              name, r.writes, r.failed, r.io.at(1), r.reads, r.bad, r.seconds);
  std::printf(
      "%-10s mem_used_total %.0f MiB, mem_used_max %.0f MiB (mem_limit %.0f MiB), "
      "compr_data_size %.0f MiB\n",
      "", mib(r.mm.at(2)), mib(r.mm.at(4)), mib(limit), mib(r.mm.at(1)));
  std::printf("%-10s written back %" PRIu64 " blocks (on device at the end %" PRIu64
              "), read back during the workload %.1f MiB (%" PRIu64 " blocks)\n",
              "", r.bd.at(2), r.bd.at(0), mib(r.bd_reads_workload * kBlock), r.bd_reads_workload);
  std::printf("%-10s policy_stat: reactions %" PRIu64 ", wb_pressure %" PRIu64 ", waited %" PRIu64
              " (%" PRIu64 " ms), limit_failed %" PRIu64 "\n",
              "", r.ps.at(13), r.ps.at(9), r.ps.at(14), r.ps.at(15), r.ps.at(16));
  std::printf(
      "%-10s read of a written-back block: mean %.1f us, p50 %.1f, p99 %.1f (n=%zu); "
      "of a block in RAM: mean %.1f us, p50 %.1f, p99 %.1f (n=%zu)\n",
      "", r.wb_read.mean_us, r.wb_read.p50_us, r.wb_read.p99_us, r.wb_read.n, r.ram_read.mean_us,
      r.ram_read.p50_us, r.ram_read.p99_us, r.ram_read.n);
}

std::uint64_t parse_size(const std::string& t) {
  char* end = nullptr;
  std::uint64_t v = std::strtoull(t.c_str(), &end, 10);
  switch (*end) {
    case 'G': v <<= 30; break;
    case 'M': v <<= 20; break;
    case 'K': v <<= 10; break;
    case '\0': break;
    default: die("bad size " + t);
  }
  if (v < (std::uint64_t{64} << 20)) die("--size: at least 64M");
  return v / kBlock * kBlock;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t size = std::uint64_t{4} << 30, seed = 1;
  std::string policy = "chromeos", dir = "/tmp";
  std::size_t sample = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--size")
      size = parse_size(v);
    else if (k == "--policy")
      policy = v;
    else if (k == "--dir")
      dir = v;
    else if (k == "--seed")
      seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--sample")
      sample = std::strtoull(v.c_str(), nullptr, 10);
    else
      die("unknown option " + k);
  }
  if (argc % 2 == 0)
    die("usage: uzram-policy-bench [--size 4G] [--policy P] [--dir D] [--seed S] [--sample N]");
  const double per_block = compressed_per_block();
  const std::uint64_t limit =
      static_cast<std::uint64_t>(per_block * static_cast<double>(size / kBlock) / 2);
  std::printf(
      "size %.0f MiB, lz4 %.0f bytes/block, compressed %.0f MiB, mem_limit %.0f MiB, "
      "seed %" PRIu64 "\n",
      static_cast<double>(size) / 1048576, per_block,
      per_block * static_cast<double>(size / kBlock) / 1048576,
      static_cast<double>(limit) / 1048576, seed);
  const RunResult off = run("off", size, limit, dir, seed, sample);
  print("off", off, limit);
  const RunResult on = run(policy, size, limit, dir, seed, sample);
  print(policy.c_str(), on, limit);
  std::printf("failed writes: off %" PRIu64 ", %s %" PRIu64 "\n", off.failed, policy.c_str(),
              on.failed);
  return on.bad || off.bad ? 1 : 0;
}
