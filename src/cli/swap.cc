// cli/swap.cc - `uzram serve --swap`: stacks, the I/O flusher flag, locked memory and the
// budget check (see swap.h).
#include "cli/swap.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "cli/log_sink.h"
#include "nbd/server.h"
#include "util/errno_text.h"
#include "uzram/store.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#define PR_GET_IO_FLUSHER 58
#endif

namespace uzram::cli {
namespace {

constexpr unsigned kCapIpcLock = 14;
constexpr std::uint64_t kUnlimited = UINT64_MAX;

std::string mib(std::uint64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

// The value of a "Name:  value" line of /proc/self/status, or "".
std::string status_field(const char* name) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(name) + ":";
  while (std::getline(f, line)) {
    if (line.compare(0, key.size(), key) == 0) {
      const std::size_t at = line.find_first_not_of(" \t", key.size());
      return at == std::string::npos ? "" : line.substr(at);
    }
  }
  return "";
}

bool has_cap_ipc_lock() {
  const std::string eff = status_field("CapEff");
  if (eff.empty()) return false;
  return (std::strtoull(eff.c_str(), nullptr, 16) >> kCapIpcLock) & 1;
}

// A cgroup limit file: a number of bytes, or "max"; 0 when absent or unlimited.
std::uint64_t read_limit(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  if (!(f >> v) || v == "max") return 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  // cgroup v1 says "no limit" with a number near 2^63.
  return (end == v.c_str() || n >= (1ULL << 62)) ? 0 : n;
}

// The tightest limit of `file` in `dir` and the directories above it up to `root`; with
// `usage` (the usage file beside it), the least room (limit - usage) instead.
std::uint64_t tightest(const std::string& root, std::string dir, const char* file,
                       const char* usage = nullptr) {
  std::uint64_t best = 0;
  for (;;) {
    std::uint64_t l = read_limit(root + dir + "/" + file);
    if (l != 0 && usage != nullptr) {
      const std::uint64_t used = read_limit(root + dir + "/" + usage);
      l = used >= l ? 1 : l - used;  // 1: no room (0 means no limit)
    }
    if (l != 0 && (best == 0 || l < best)) best = l;
    if (dir.empty() || dir == "/") return best;
    const std::size_t slash = dir.rfind('/');
    dir = slash == std::string::npos || slash == 0 ? "/" : dir.substr(0, slash);
  }
}

// The tightest limit (or room, `room`) of the memory cgroups above this process; 0: none.
std::uint64_t cgroup_memory(bool room) {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  std::uint64_t best = 0;
  while (std::getline(f, line)) {
    // "0::/path" (v2), "N:memory:/path" or "N:cpu,memory:/path" (v1)
    const std::size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    const std::string path = line.substr(b + 1);
    std::uint64_t l = 0;
    if (controllers == ",,") {
      l = tightest("/sys/fs/cgroup", path, "memory.max", room ? "memory.current" : nullptr);
    } else if (controllers.find(",memory,") != std::string::npos) {
      l = tightest("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes",
                   room ? "memory.usage_in_bytes" : nullptr);
    }
    if (l != 0 && (best == 0 || l < best)) best = l;
  }
  return best;
}

std::string describe_limit_fix(const char* what) {
  return std::string("; raise ") + what + ", or lower mem_limit, --threads or the connections";
}

}  // namespace

std::uint64_t locked_bytes() noexcept {
  try {
    return std::strtoull(status_field("VmLck").c_str(), nullptr, 10) * 1024;  // "123 kB"
  } catch (...) {
    return 0;
  }
}

std::uint64_t memlock_limit() noexcept {
  try {
    if (has_cap_ipc_lock()) return kUnlimited;
  } catch (...) {
  }
  rlimit r{};
  if (::getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return kUnlimited;
  return r.rlim_cur;
}

std::uint64_t cgroup_memory_limit() noexcept {
  try {
    return cgroup_memory(false);
  } catch (...) {
    return 0;
  }
}

std::uint64_t cgroup_memory_room() noexcept {
  try {
    const std::uint64_t r = cgroup_memory(true);
    return r == 0 ? kUnlimited : r;
  } catch (...) {
    return kUnlimited;
  }
}

std::uint64_t resident_bytes() noexcept {
  try {
    return std::strtoull(status_field("VmRSS").c_str(), nullptr, 10) * 1024;  // "123 kB"
  } catch (...) {
    return 0;
  }
}

void swap_server_options(nbd::ServerOptions* so) noexcept {
  so->max_connections = kSwapMaxConnections;
  so->max_negotiating = std::min(so->max_negotiating, kSwapMaxConnections);
  so->session.preallocate = true;
  so->session.piece_bytes = std::size_t{256} << 10;
  so->session.max_in_flight_bytes = std::size_t{2} << 20;
  so->session.max_jobs = 128;
}

bool swap_prepare(const Io& io) noexcept {
  // One malloc arena: glibc reserves 64 MiB of address space for each thread's arena, and
  // under mlockall that reservation counts as locked (VmLck, RLIMIT_MEMLOCK). Serving does
  // not allocate, so nothing contends for it.
  (void)::mallopt(M_ARENA_MAX, 1);  // NOLINT(concurrency-mt-unsafe): no other thread yet
  pthread_attr_t attr;
  if (pthread_getattr_default_np(&attr) == 0) {
    (void)pthread_attr_setstacksize(&attr, kSwapStackBytes);
    (void)pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
  }
  if (::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0) {
    const int e = errno;
    report(io, "serve", {e, std::generic_category()},
           e == EPERM    ? "--swap: prctl(PR_SET_IO_FLUSHER) refused: it needs CAP_SYS_RESOURCE "
                           "(run as root, or give the service AmbientCapabilities=CAP_SYS_RESOURCE)"
           : e == EINVAL ? "--swap: prctl(PR_SET_IO_FLUSHER) unknown to this kernel (Linux 5.6 "
                           "or later has it)"
                         : std::string("--swap: prctl(PR_SET_IO_FLUSHER): ") + errno_text(e));
    return false;
  }
  return true;
}

bool swap_precheck(const SwapBudget& b, std::uint64_t disksize, const Io& io) noexcept {
  const std::uint64_t store = b.mem_limit + kSwapPoolSlack + disksize / kBlockSize * 16;
  const std::uint64_t need = store + b.per_connection * b.connections;
  const std::uint64_t rss = resident_bytes();
  const std::uint64_t limit = memlock_limit();
  const std::uint64_t room = cgroup_memory_room();
  const std::uint64_t ram = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                            static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  const std::string detail = mib(need) + " more must be locked (the store " + mib(store) +
                             ": mem_limit " + mib(b.mem_limit) + " + " + mib(kSwapPoolSlack) +
                             " and the slot table; then " + std::to_string(b.connections) +
                             " connections x " + mib(b.per_connection) + ")";
  std::string refuse;
  if (limit != kUnlimited && rss + need > limit) {
    refuse = detail + " besides the " + mib(rss) + " resident now, above RLIMIT_MEMLOCK (" +
             mib(limit) + ")" +
             describe_limit_fix("it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK");
  } else if (room != kUnlimited && need > room) {
    refuse = detail + ", more than the memory cgroup has room for (" + mib(room) + " of " +
             mib(cgroup_memory_limit()) + ")" +
             describe_limit_fix("the limit (memory.max, MemoryMax=)");
  } else if (ram != 0 && rss + need > ram) {
    refuse = detail + ", more than this machine's RAM (" + mib(ram) + "); lower mem_limit";
  }
  if (refuse.empty()) return true;
  report(io, "serve", std::make_error_code(std::errc::not_enough_memory), "--swap: " + refuse);
  return false;
}

bool swap_lock(const SwapBudget& b, const Io& io, LogSink& sink) noexcept {
  const std::uint64_t limit = memlock_limit();
  if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    const int e = errno;
    std::string m = "--swap: mlockall: ";
    m += e == ENOMEM ? "what is mapped already is more than RLIMIT_MEMLOCK (" + mib(limit) +
                           ") allows; raise it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK"
         : e == EPERM ? "not permitted: grant CAP_IPC_LOCK, or raise RLIMIT_MEMLOCK"
                      : errno_text(e);
    report(io, "serve", {e, std::generic_category()}, m);
    return false;
  }
  // VmLck counts every locked mapping whole, resident or not: the program, its libraries,
  // the slot table, the pool's tables and its frames' reservation (mem_limit + slack,
  // populated as the pool grows). Still to come: the connections and the last threads.
  const std::uint64_t now = locked_bytes();
  const std::uint64_t conns = b.per_connection * b.connections;
  const std::uint64_t total = now + conns + b.extra_threads * kSwapStackBytes;
  const std::string detail =
      mib(total) + " must be locked (" + mib(now) + " now: program, libraries, slot table and " +
      "the pool, mem_limit " + mib(b.mem_limit) + " + " + mib(kSwapPoolSlack) + "; then " +
      std::to_string(b.connections) + " connections x " + mib(b.per_connection) + ")";
  const std::uint64_t cgroup = cgroup_memory_limit();
  const std::uint64_t ram = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                            static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  std::string refuse;
  if (limit != kUnlimited && total > limit) {
    refuse = detail + ", above RLIMIT_MEMLOCK (" + mib(limit) + ")" +
             describe_limit_fix("it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK");
  } else if (cgroup != 0 && total > cgroup) {
    refuse = detail + ", above the memory cgroup's limit (" + mib(cgroup) + ")" +
             describe_limit_fix("the limit (memory.max, MemoryMax=)");
  } else if (ram != 0 && total > ram) {
    refuse = detail + ", more than this machine's RAM (" + mib(ram) + "); lower mem_limit";
  }
  if (!refuse.empty()) {
    ::munlockall();
    report(io, "serve", std::make_error_code(std::errc::not_enough_memory), "--swap: " + refuse);
    return false;
  }
  const int flusher = ::prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0);
  sink.write("swap: " + mib(now) + " locked (the pool's frames as they come: mem_limit " +
             mib(b.mem_limit) + " + " + mib(kSwapPoolSlack) + "), at most " + mib(total) +
             " with " + std::to_string(b.connections) + " connections; I/O flusher " +
             (flusher == 1 ? "on" : "off"));
  return true;
}

}  // namespace uzram::cli
