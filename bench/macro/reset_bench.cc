// uzram-reset-bench: what reset and destruction of a large, mostly empty store cost
// (docs/benchmarks.md, "Store: reset costs what is stored"). For each disk size, writes
// DATA bytes of distinct compressible blocks (contiguous from block 0, or scattered: one
// block every disk/data blocks, so that each lands on its own slot-table page), then times
// `reset`, then fills it again and times the store's destruction.
//
//   uzram-reset-bench [--disks 1T,4T] [--data 1G] [--layout contiguous,scattered]
//                     [--repeat 3]
// Prints one line per (disk, layout): the median seconds of write, reset and destroy, and
// the process's peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "uzram/store.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t a = 0;
  while (a <= s.size()) {
    std::size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Text-like block, distinct per index (compresses about 3x with lz4, never same-filled).
void make_block(unsigned char* b, std::uint64_t index) {
  static const char* const kWords[] = {"zram ", "pool ",   "compress ", "the ",    "page ",
                                       "swap ", "memory ", "kernel ",   "handle ", "class "};
  std::uint64_t x = index * 0x9e3779b97f4a7c15ULL + 1;
  for (unsigned i = 0; i < uzram::kBlockSize;) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const char* w = kWords[x % 10];
    while (*w && i < uzram::kBlockSize) b[i++] = static_cast<unsigned char>(*w++);
  }
  std::memcpy(b, &index, sizeof index);
}

std::unique_ptr<uzram::Store> make_store(const std::string& disk) {
  auto st = uzram::Store::create("zram0");
  if (!st) std::exit(1);
  std::string msg;
  if (!(*st)->write_attr("comp_algorithm", "lz4", &msg) ||
      !(*st)->write_attr("disksize", disk, &msg)) {
    std::fprintf(stderr, "uzram-reset-bench: %s\n", msg.c_str());
    std::exit(1);
  }
  return std::move(st).value();
}

void fill(uzram::Store& st, std::uint64_t blocks, std::uint64_t stride) {
  alignas(64) unsigned char b[uzram::kBlockSize];
  for (std::uint64_t i = 0; i < blocks; i++) {
    make_block(b, i);
    if (!st.write(i * stride, b)) {
      std::fprintf(stderr, "uzram-reset-bench: write of block %llu failed\n",
                   static_cast<unsigned long long>(i * stride));
      std::exit(1);
    }
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> disks{"1T", "4T"}, layouts{"contiguous", "scattered"};
  std::string data = "1G";
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--disks")
      disks = split(v);
    else if (k == "--data")
      data = v;
    else if (k == "--layout")
      layouts = split(v);
    else if (k == "--repeat")
      repeat = std::max(1, std::atoi(v.c_str()));
    else {
      std::fprintf(stderr,
                   "usage: uzram-reset-bench [--disks 1T,4T] [--data 1G] [--layout "
                   "contiguous,scattered] [--repeat N]\n");
      return 2;
    }
  }
  auto data_bytes = uzram::parse_size(data);
  if (!data_bytes) return 2;
  const std::uint64_t blocks = *data_bytes / uzram::kBlockSize;
  std::printf("%-6s %-10s %-11s %9s %9s %9s %10s\n", "disk", "data", "layout", "write_s", "reset_s",
              "destroy_s", "maxrss_MiB");
  for (const std::string& disk : disks) {
    auto disk_bytes = uzram::parse_size(disk);
    if (!disk_bytes) return 2;
    const std::uint64_t disk_blocks = *disk_bytes / uzram::kBlockSize;
    for (const std::string& layout : layouts) {
      const std::uint64_t stride =
          layout == "scattered" ? std::max<std::uint64_t>(1, disk_blocks / blocks) : 1;
      std::vector<double> w, r, d;
      for (int k = 0; k < repeat; k++) {
        auto st = make_store(disk);
        auto t0 = Clock::now();
        fill(*st, blocks, stride);
        w.push_back(seconds_since(t0));
        t0 = Clock::now();
        if (!st->write_attr("reset", "1")) return 1;
        r.push_back(seconds_since(t0));
        std::string msg;
        if (!st->write_attr("comp_algorithm", "lz4", &msg) ||
            !st->write_attr("disksize", disk, &msg))
          return 1;
        fill(*st, blocks, stride);
        t0 = Clock::now();
        st.reset();
        d.push_back(seconds_since(t0));
      }
      rusage u{};
      getrusage(RUSAGE_SELF, &u);
      std::printf("%-6s %-10s %-11s %9.3f %9.3f %9.3f %10ld\n", disk.c_str(), data.c_str(),
                  layout.c_str(), median(w), median(r), median(d), u.ru_maxrss / 1024);
      std::fflush(stdout);
    }
  }
  return 0;
}
