// bench/macro/sys_info.h - the process and machine facts uzram-bench needs: RSS, CPU model,
// which malloc is linked in (glibc, or jemalloc/mimalloc through LD_PRELOAD) and how to make
// it give memory back, and running the driver itself in a child process.
#ifndef UZRAM_BENCH_MACRO_SYS_INFO_H_
#define UZRAM_BENCH_MACRO_SYS_INFO_H_

#include <cstdint>
#include <string>
#include <vector>

namespace uzram::bench {

// Resident set size of this process (/proc/self/statm), in bytes.
std::uint64_t rss_bytes() noexcept;

std::string cpu_model();
unsigned online_cpus() noexcept;

// The malloc this process actually uses: "glibc", "jemalloc" or "mimalloc", with version.
struct MallocInfo {
  std::string name;
  std::string version;
};
MallocInfo detect_malloc();
// The allocator's own "give memory back" call: malloc_trim(0) for glibc,
// mallctl("arena.<all>.purge") for jemalloc, mi_collect(true) for mimalloc. Returns what
// was called, for the report.
const char* release_free_memory();

// A preloadable allocator library, if installed.
struct Preload {
  std::string name;  // "jemalloc", "mimalloc"
  std::string path;  // empty when not installed
};
std::vector<Preload> find_preloads();

// Runs /proc/self/exe with `args` (LD_PRELOAD=`preload` when non-empty, else unset),
// stderr inherited, and returns its exit status with its stdout in *out.
int run_self(const std::vector<std::string>& args, const std::string& preload, std::string* out);

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_SYS_INFO_H_
