// bench/macro/sys_info.cc - RSS, CPU model, malloc detection and child processes.
#include "sys_info.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace uzram::bench {

namespace {

using MallctlFn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
using MiVersionFn = int (*)();
using MiCollectFn = void (*)(bool);

template <class Fn>
Fn lookup(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

std::uint64_t rss_bytes() noexcept {
  static const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  static const long page = sysconf(_SC_PAGESIZE);
  char buf[128];
  const ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<std::uint64_t>(page);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

unsigned online_cpus() noexcept {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

MallocInfo detect_malloc() {
  if (auto mallctl = lookup<MallctlFn>("mallctl")) {
    const char* v = nullptr;
    std::size_t len = sizeof v;
    if (mallctl("version", &v, &len, nullptr, 0) == 0 && v) {
      std::string s(v);
      return {"jemalloc", s.substr(0, s.find('-'))};
    }
    return {"jemalloc", "?"};
  }
  if (auto mi_version = lookup<MiVersionFn>("mi_version")) {
    const int v = mi_version();  // e.g. 209 = 2.0.9
    return {"mimalloc", std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." +
                            std::to_string(v % 10)};
  }
  return {"glibc", gnu_get_libc_version()};
}

const char* release_free_memory() {
  if (auto mallctl = lookup<MallctlFn>("mallctl")) {
    mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096 = MALLCTL_ARENAS_ALL
    return "mallctl(arena.<all>.purge)";
  }
  if (auto mi_collect = lookup<MiCollectFn>("mi_collect")) {
    mi_collect(true);
    return "mi_collect(true)";
  }
  malloc_trim(0);
  return "malloc_trim(0)";
}

std::vector<Preload> find_preloads() {
  static const char* const kDirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                      "/usr/lib64", "/usr/lib", "/usr/local/lib"};
  static const char* const kLibs[][3] = {{"jemalloc", "libjemalloc.so.2", "libjemalloc.so"},
                                         {"mimalloc", "libmimalloc.so.2", "libmimalloc.so"}};
  std::vector<Preload> out;
  for (const auto& lib : kLibs) {
    Preload p{lib[0], ""};
    for (const char* dir : kDirs) {
      for (int i = 1; i < 3 && p.path.empty(); i++) {
        const std::string path = std::string(dir) + "/" + lib[i];
        if (access(path.c_str(), R_OK) == 0) p.path = path;
      }
    }
    out.push_back(p);
  }
  return out;
}

int run_self(const std::vector<std::string>& args, const std::string& preload, std::string* out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    if (preload.empty()) {
      unsetenv("LD_PRELOAD");
    } else {
      setenv("LD_PRELOAD", preload.c_str(), 1);
    }
    std::vector<char*> argv;
    static char self[] = "uzram-bench";
    argv.push_back(self);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "uzram-bench: exec /proc/self/exe: %s\n", std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  char buf[65536];
  out->clear();
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out->append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace uzram::bench
