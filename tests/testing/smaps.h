// testing/smaps.h - smaps_range(): what /proc/self/smaps says about the mappings that
// overlap [lo, hi): how many VMAs, their resident and huge-page kB, and whether every one
// is marked MADV_NOHUGEPAGE ("nh" in VmFlags). Linux only; found == false where smaps
// cannot be read.
#ifndef UZRAM_TESTS_TESTING_SMAPS_H_
#define UZRAM_TESTS_TESTING_SMAPS_H_

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

namespace uzram::testing {

struct SmapsRange {
  bool found = false;
  unsigned vmas = 0;
  std::size_t rss_kb = 0;
  std::size_t anon_huge_kb = 0;
  bool all_nohugepage = true;
};

inline SmapsRange smaps_range(const void* lo, const void* hi) {
  SmapsRange out;
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) return out;
  out.found = true;
  const auto l = reinterpret_cast<unsigned long>(lo);
  const auto h = reinterpret_cast<unsigned long>(hi);
  char line[512];
  bool in = false;
  while (std::fgets(line, sizeof(line), f)) {
    unsigned long a = 0, b = 0;
    char dash = 0;
    // A mapping's header starts with "start-end " (hex); field lines start with a name.
    if (std::sscanf(line, "%lx%c%lx", &a, &dash, &b) == 3 && dash == '-') {
      in = a < h && b > l;
      if (in) out.vmas++;
      continue;
    }
    if (!in) continue;
    std::size_t kb = 0;
    if (std::sscanf(line, "Rss: %zu kB", &kb) == 1) out.rss_kb += kb;
    if (std::sscanf(line, "AnonHugePages: %zu kB", &kb) == 1) out.anon_huge_kb += kb;
    if (std::strncmp(line, "VmFlags:", 8) == 0) {
      const std::string flags = std::string(" ") + (line + 8);
      if (flags.find(" nh") == std::string::npos) out.all_nohugepage = false;
    }
  }
  std::fclose(f);
  return out;
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_SMAPS_H_
