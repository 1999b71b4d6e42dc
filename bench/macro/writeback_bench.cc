// uzram-writeback-bench: writeback and read-back through a backing tier (a local file or a
// remote NBD URI), raw or packed (docs/benchmarks.md, "Store: packed writeback and the
// remote tier"). Loads a page corpus (e.g. from make-page-corpus) COPIES times into a
// store, marks everything idle, times `writeback idle`, then reads every written-back
// block back (one thread, in index order), checking each against the corpus.
//
//   uzram-writeback-bench --corpus FILE --backing PATH|URI [--algo lz4] [--packed]
//                         [--batch 32] [--copies 1] [--repeat 3]
// A PATH is created (sparse, as large as the store) and removed; a URI must be served
// (nbdkit memory, uzram serve). Prints one line per run: pages written back, backing
// blocks they take, bytes per written-back block against the kernel's one block per
// object, writeback MB/s, read-back MB/s (MB of pages per second).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
using uzram::kBlockSize;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "uzram-writeback-bench: %s\n", m.c_str());
  std::exit(1);
}

void attr(uzram::Store& s, const char* name, const std::string& value) {
  std::string msg;
  if (!s.write_attr(name, value, &msg)) die(std::string(name) + "=" + value + ": " + msg);
}

bool is_uri(const std::string& b) { return b.rfind("nbd", 0) == 0 && b.find("://") != b.npos; }

}  // namespace

int main(int argc, char** argv) {
  std::string corpus, backing, algo = "lz4", batch = "32";
  bool packed = false;
  int copies = 1, repeat = 3;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--corpus")
      corpus = val();
    else if (a == "--backing")
      backing = val();
    else if (a == "--algo")
      algo = val();
    else if (a == "--batch")
      batch = val();
    else if (a == "--packed")
      packed = true;
    else if (a == "--copies")
      copies = std::atoi(val().c_str());
    else if (a == "--repeat")
      repeat = std::atoi(val().c_str());
    else
      die("unknown option " + a);
  }
  if (corpus.empty() || backing.empty() || copies < 1 || repeat < 1) {
    die("usage: --corpus FILE --backing PATH|URI [--algo A] [--packed] [--batch N] "
        "[--copies K] [--repeat R]");
  }
  std::vector<unsigned char> pages;
  {
    FILE* f = std::fopen(corpus.c_str(), "rb");
    if (!f) die("cannot open " + corpus);
    unsigned char buf[1 << 16];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
      pages.insert(pages.end(), buf, buf + n);
    }
    std::fclose(f);
  }
  const std::uint64_t npages = pages.size() / kBlockSize;
  const std::uint64_t nslots = npages * static_cast<std::uint64_t>(copies);
  for (int run = 0; run < repeat; run++) {
    if (!is_uri(backing)) {
      const int fd = ::open(backing.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
      if (fd < 0 || ::ftruncate(fd, static_cast<off_t>((nslots + 1) * kBlockSize)) != 0) {
        die("cannot create " + backing);
      }
      ::close(fd);
    }
    auto st = uzram::Store::create("zram0");
    if (!st) die("Store::create");
    std::unique_ptr<uzram::Store> s = std::move(st).value();
    attr(*s, "comp_algorithm", algo);
    attr(*s, "backing_dev", backing);
    attr(*s, "compressed_writeback", packed ? "1" : "0");
    attr(*s, "writeback_batch_size", batch);
    attr(*s, "disksize", std::to_string(nslots * kBlockSize));
    for (std::uint64_t i = 0; i < nslots; i++) {
      if (!s->write(i, &pages[(i % npages) * kBlockSize])) die("write failed");
    }
    attr(*s, "idle", "all");
    auto t0 = Clock::now();
    attr(*s, "writeback", "idle");
    const double wb_s = since(t0);
    const uzram::BdStat bd = s->bd_stat();
    alignas(4096) unsigned char out[kBlockSize];
    std::uint64_t reads = 0;
    t0 = Clock::now();
    for (std::uint64_t i = 0; i < nslots; i++) {
      if (s->is_unallocated(i) || s->is_same_filled(i, nullptr)) continue;
      if (!s->read(i, out)) die("read-back of block " + std::to_string(i) + " failed");
      if (std::memcmp(out, &pages[(i % npages) * kBlockSize], kBlockSize) != 0) {
        die("block " + std::to_string(i) + " read back wrong");
      }
      reads++;
    }
    const double rd_s = since(t0);
    std::printf(
        "%s %s %s batch=%s: %llu pages written back into %llu blocks (%.3fx the "
        "kernel's bytes, %llu live bytes), writeback %.1f MB/s (%.3f s), read-back "
        "%.1f MB/s (%llu pages, %.3f s)\n",
        is_uri(backing) ? "remote" : "file", algo.c_str(), packed ? "packed" : "raw", batch.c_str(),
        static_cast<unsigned long long>(bd.bd_count),
        static_cast<unsigned long long>(bd.backing_blocks),
        bd.bd_count ? static_cast<double>(bd.backing_blocks) / bd.bd_count : 0.0,
        static_cast<unsigned long long>(bd.backing_bytes), bd.bd_count * kBlockSize / 1e6 / wb_s,
        wb_s, reads * kBlockSize / 1e6 / rd_s, static_cast<unsigned long long>(reads), rd_s);
    std::fflush(stdout);
    s.reset();
    if (!is_uri(backing)) ::unlink(backing.c_str());
  }
  return 0;
}
