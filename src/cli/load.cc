// cli/load.cc - `uzram load IMAGE`: what would zram cost for this data? Loads the image into
// a fresh in-process Store (4 KiB blocks, the last one zero-padded) and reports mm_stat,
// ratio, overhead, time and throughput (report in load_report.cc).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "cli/cli.h"
#include "cli/load_report.h"
#include "cli/progress.h"
#include "sync/mutex.h"
#include "util/errno_text.h"
#include "uzram/store.h"

namespace uzram::cli {
namespace {

// Attributes the kernel accepts only before disksize (the store's attribute table says
// which); every other -o is written after.
bool pre_init(std::string_view attr) {
  const auto info = Store::attr_info(attr);
  return info && info->before_init;
}

struct Setting {
  std::string attr, value;
};

// Splits "attr=value" (-o) or "attr value..." (--then; a bare attr means "1").
bool split_setting(std::string_view text, char sep, Setting* out) {
  const std::size_t b = text.find_first_not_of(' ');
  if (b == std::string_view::npos) return false;
  text.remove_prefix(b);
  const std::size_t at = text.find(sep);
  out->attr = std::string(text.substr(0, at));
  if (at == std::string_view::npos) {
    if (sep == '=') return false;
    out->value = "1";
  } else {
    out->value = std::string(text.substr(at + 1));
    if (sep == ' ' && out->value.find_first_not_of(' ') == std::string::npos) out->value = "1";
  }
  return !out->attr.empty();
}

bool known_attr(const std::string& attr) { return Store::attr_info(attr).has_value(); }

// Writes one attribute; on error prints the store's message (it names the attribute).
bool apply(Store& store, const Setting& s, const Io& io, std::string_view hint = {}) {
  std::string msg;
  if (auto r = store.write_attr(s.attr, s.value, &msg); !r) {
    report(io, "load", r.error(),
           (msg.empty() ? s.attr + ": " + r.error().message() : msg) + std::string(hint));
    return false;
  }
  return true;
}

// The loader: threads take 1 MiB chunks in turn. Failed writes for lack of memory
// (mem_limit, pool exhausted) are counted; any other error stops the load.
struct Loader {
  Loader(Store& s, int f, std::uint64_t bytes)
      : store(s), fd(f), image_bytes(bytes), per_unit(s.unit_size() / kBlockSize) {}
  Store& store;
  int fd;
  std::uint64_t image_bytes;
  std::uint64_t per_unit;  // blocks per compression unit (1: a 4 KiB store)
  static constexpr std::uint64_t kChunk = 256 * kBlockSize;  // a multiple of every unit
  std::atomic<std::uint64_t> next{0}, done_bytes{0}, failed{0};
  std::atomic<bool> stop{false};
  Mutex mu{LockLevel::cli_load, "cli_load"};  // protects: error, error_msg, running
  CondVar cv;
  unsigned running ZS_GUARDED_BY(mu) = 0;
  std::error_code error ZS_GUARDED_BY(mu);
  std::string error_msg ZS_GUARDED_BY(mu);

  void fail(std::error_code ec, std::string msg) {
    MutexLock l(mu);
    if (!error) {
      error = ec;
      error_msg = std::move(msg);
    }
    stop = true;
  }

  void work() {
    std::unique_ptr<unsigned char[]> buf(new unsigned char[kChunk]);
    for (;;) {
      const std::uint64_t off = next.fetch_add(kChunk);
      if (off >= image_bytes || stop) break;
      const std::uint64_t want = std::min(kChunk, image_bytes - off);
      std::uint64_t got = 0;
      while (got < want) {
        const ssize_t n = ::pread(fd, buf.get() + got, want - got, static_cast<off_t>(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          const int e = n < 0 ? errno : EIO;
          fail({e, std::generic_category()},
               fmt::format("read at offset {}: {}", off + got,
                           n < 0 ? errno_text(e) : "unexpected end of file"));
          return finish();
        }
        got += static_cast<std::uint64_t>(n);
      }
      const std::uint64_t blocks = (want + kBlockSize - 1) / kBlockSize;
      std::memset(buf.get() + want, 0, blocks * kBlockSize - want);  // zero-pad the tail
      // Whole units as units (a chunk starts on a unit boundary: 1 MiB is a multiple of
      // every unit size); the image's last partial unit block by block.
      for (std::uint64_t b = 0; b < blocks;) {
        const std::uint64_t n = b + per_unit <= blocks ? per_unit : 1;
        auto r = store.write_blocks(off / kBlockSize + b, n, buf.get() + b * kBlockSize);
        if (!r && (r.error() == Errc::limit_reached || r.error() == Errc::no_memory)) {
          failed.fetch_add(n, std::memory_order_relaxed);
        } else if (!r) {
          fail(r.error(),
               fmt::format("write of block {}: {}", off / kBlockSize + b, r.error().message()));
          return finish();
        }
        b += n;
      }
      done_bytes.fetch_add(want, std::memory_order_relaxed);
    }
    finish();
  }

  void finish() {
    MutexLock l(mu);
    running--;
    cv.notify_all();
  }
};

struct Plan {
  const LoadOptions& o;
  const std::vector<Setting>& before;
  const std::vector<Setting>& after;
  const std::vector<Setting>& then;
  std::uint64_t size;
  int fd;
  std::uint64_t image_bytes;
};

// One load of the image into a fresh store (unit: its unit_size, or null for -o's or the
// default), then the --then commands. Returns the exit status (kExitOk: *store and *res
// are filled).
int load_once(const Plan& p, const std::string* unit, const Io& io, std::unique_ptr<Store>* out,
              LoadResult* res) {
  const LoadOptions& o = p.o;
  auto created = Store::create("zram0");
  if (!created) {
    report(io, "load", created.error(), "");
    return kExitFailed;
  }
  Store& store = **created;
  if (!o.algo.empty()) {
    std::string avail = "\n";
    if (auto list = store.read_attr("comp_algorithm")) avail = *list;
    avail.erase(std::remove(avail.begin(), avail.end(), '['), avail.end());
    avail.erase(std::remove(avail.begin(), avail.end(), ']'), avail.end());
    while (!avail.empty() && (avail.back() == '\n' || avail.back() == ' ')) avail.pop_back();
    if (!apply(store, {"comp_algorithm", o.algo}, io, " (available: " + avail + ")"))
      return kExitFailed;
  }
  if (unit && !apply(store, {"unit_size", *unit}, io)) return kExitFailed;
  for (const Setting& s : p.before) {
    if (!apply(store, s, io)) return kExitFailed;
  }
  if (!apply(store, {"disksize", std::to_string(p.size)}, io)) return kExitFailed;
  for (const Setting& s : p.after) {
    if (!apply(store, s, io)) return kExitFailed;
  }

  Loader loader(store, p.fd, p.image_bytes);
  const auto t0 = std::chrono::steady_clock::now();
  {
    Progress bar(io.err, p.image_bytes, io.progress && !o.json);
    std::vector<std::thread> threads;
    MutexLock l(loader.mu);
    loader.running = o.jobs;
    l.unlock();
    for (unsigned i = 0; i < o.jobs; i++) threads.emplace_back([&loader] { loader.work(); });
    l.lock();
    while (loader.running) {
      loader.cv.wait_for(loader.mu, std::chrono::milliseconds(100));
      bar.update(loader.done_bytes.load(std::memory_order_relaxed));
    }
    l.unlock();
    for (std::thread& t : threads) t.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    MutexLock l(loader.mu);  // the workers are joined: for the analysis
    if (loader.error) {
      report(io, "load", loader.error, o.image + ": " + loader.error_msg);
      return kExitFailed;
    }
  }

  res->image = o.image;
  res->image_bytes = p.image_bytes;
  res->failed_writes = loader.failed.load();
  res->seconds = seconds;
  for (const Setting& s : p.then) {
    const auto t = std::chrono::steady_clock::now();
    if (!apply(store, s, io)) return kExitFailed;
    res->then.push_back(
        {s.attr + (s.value == "1" ? "" : " " + s.value),
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count()});
  }
  *out = std::move(*created);
  return kExitOk;
}

}  // namespace

int run_load(const LoadOptions& o, const Io& io) noexcept {
  // Validate the command line before touching the image.
  std::vector<Setting> before, after, then;
  for (const std::string& a : o.attrs) {
    Setting s;
    if (!split_setting(a, '=', &s))
      return usage_error(io, "load: -o expects attr=value, got '" + a + "'");
    if (s.attr == "disksize") return usage_error(io, "load: -o disksize: use --size");
    if (!known_attr(s.attr)) return usage_error(io, "load: -o " + s.attr + ": no such attribute");
    (pre_init(s.attr) ? before : after).push_back(s);
  }
  for (const std::string& t : o.then) {
    Setting s;
    if (!split_setting(t, ' ', &s))
      return usage_error(io, "load: --then expects 'attr [value]', got '" + t + "'");
    if (!known_attr(s.attr))
      return usage_error(io, "load: --then " + s.attr + ": no such attribute");
    then.push_back(s);
  }
  std::uint64_t size = 0;
  if (!o.size.empty()) {
    auto r = parse_size(o.size);
    if (!r || *r == 0) return usage_error(io, "load: --size: invalid size '" + o.size + "'");
    size = *r;
  }

  // O_NONBLOCK: a FIFO's open must not wait for a writer (it is refused below).
  const int fd = ::open(o.image.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    report(io, "load", {e, std::generic_category()}, o.image + ": cannot open: " + errno_text(e));
    return kExitFailed;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    report(io, "load", {errno, std::generic_category()}, o.image + ": " + errno_text(errno));
    return kExitFailed;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO (pipe)"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "a special file";
    report(io, "load", std::make_error_code(std::errc::invalid_argument),
           o.image + " is " + kind +
               ": IMAGE must be a regular file or a block device (its size is the disk's)");
    return kExitFailed;
  }
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  const off_t end = S_ISREG(st.st_mode) ? st.st_size : ::lseek(fd, 0, SEEK_END);  // block devices
  if (end < 0) {
    report(io, "load", {errno, std::generic_category()}, o.image + ": " + errno_text(errno));
    return kExitFailed;
  }
  // Readable at all? A file can open and still refuse reads (EIO; /proc/self/mem).
  if (char probe; ::pread(fd, &probe, 1, 0) < 0) {
    const int e = errno;
    report(io, "load", {e, std::generic_category()}, o.image + ": cannot read: " + errno_text(e));
    return kExitFailed;
  }
  const auto image_bytes = static_cast<std::uint64_t>(end);
  const std::uint64_t image_rounded = (image_bytes + kBlockSize - 1) / kBlockSize * kBlockSize;
  if (size == 0) size = image_rounded;
  if (size == 0) return usage_error(io, "load: " + o.image + " is empty; give --size");
  if (size < image_rounded) {
    return usage_error(io, fmt::format("load: --size {} is smaller than the image ({} bytes)",
                                       o.size, image_bytes));
  }

  // --unit-size: one size is -o unit_size=SIZE; several are loaded one after the other.
  std::vector<std::string> units;
  for (const Setting& s : before) {
    if (s.attr == "unit_size" && !o.unit_sizes.empty())
      return usage_error(io, "load: give the unit size with --unit-size or -o unit_size, not both");
  }
  for (std::size_t at = 0; !o.unit_sizes.empty() && at <= o.unit_sizes.size();) {
    const std::size_t comma = std::min(o.unit_sizes.find(',', at), o.unit_sizes.size());
    const std::string u = o.unit_sizes.substr(at, comma - at);
    const auto v = parse_size(u);
    if (!v || (*v != 4096 && *v != 16384 && *v != 32768 && *v != 65536)) {
      return usage_error(io, "load: --unit-size: '" + u +
                                 "' is not a unit size (4K, 16K, 32K or 64K, comma-separated)");
    }
    units.push_back(u);
    at = comma + 1;
  }

  Plan plan{o, before, after, then, size, fd, image_bytes};
  if (units.size() <= 1) {
    std::unique_ptr<Store> store;
    LoadResult res;
    if (const int rc = load_once(plan, units.empty() ? nullptr : &units[0], io, &store, &res))
      return rc;
    const std::string text = o.json ? load_report_json(*store, res) : load_report_text(*store, res);
    std::fwrite(text.data(), 1, text.size(), io.out);
    return kExitOk;
  }
  std::vector<UnitRun> runs;
  for (const std::string& u : units) {
    std::unique_ptr<Store> store;  // freed before the next load
    UnitRun run;
    if (const int rc = load_once(plan, &u, io, &store, &run.result)) return rc;
    run.unit_size = store->unit_size();
    run.algorithm = store->comp_algorithm();
    run.streams = store->streams();
    run.disksize = store->disksize();
    run.mm = store->mm_stat();
    run.units = store->unit_stat();
    run.json = load_report_json(*store, run.result);
    runs.push_back(std::move(run));
  }
  const std::string text = o.json ? unit_comparison_json(runs) : unit_comparison_text(runs);
  std::fwrite(text.data(), 1, text.size(), io.out);
  return kExitOk;
}

}  // namespace uzram::cli
