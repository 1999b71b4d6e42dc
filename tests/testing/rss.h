// testing/rss.h - rss_bytes(): the process's resident set (/proc/self/statm; 0 where it
// cannot be read); kShadowMemory: whether a sanitizer's shadow memory counts in it (tests
// that bound RSS tightly skip those checks then).
#ifndef UZRAM_TESTS_TESTING_RSS_H_
#define UZRAM_TESTS_TESTING_RSS_H_

#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace uzram::testing {

inline std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kShadowMemory = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kShadowMemory = true;
#else
inline constexpr bool kShadowMemory = false;
#endif
#else
inline constexpr bool kShadowMemory = false;
#endif

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_RSS_H_
