// util/check.h - assertions (layer 0). Two tiers:
//   ZS_CHECK(cond, fmt, ...)   always on: misuse and corruption (bad handle, double free)
//   ZS_DCHECK(cond, ...)       UZRAM_DEBUG_LEVEL >= 1: O(1) internal invariants
// UZRAM_DEBUG_LEVEL 2 adds the lock-order checker and might_sleep() (sync/lock_order.h).
// There is no level 3: O(n) walks are check_invariants() (Pool, Store), which the tests
// call after their mutations. A failed check prints the expression, the site and a
// printf-style message, then aborts. Checks must have no side effects.
#ifndef UZRAM_UTIL_CHECK_H_
#define UZRAM_UTIL_CHECK_H_

#ifndef UZRAM_DEBUG_LEVEL
#define UZRAM_DEBUG_LEVEL 0
#endif
#if UZRAM_DEBUG_LEVEL < 0 || UZRAM_DEBUG_LEVEL > 2
#error "UZRAM_DEBUG_LEVEL must be 0, 1 or 2"
#endif

namespace uzram {

[[noreturn]] void fatal_error(const char* file, int line, const char* expr, const char* fmt, ...)
    __attribute__((format(printf, 4, 5), cold));

}  // namespace uzram

#define ZS_CHECK(cond, ...)                                         \
  do {                                                              \
    if (__builtin_expect(!(cond), 0))                               \
      ::uzram::fatal_error(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

#define ZS_FATAL(...) ::uzram::fatal_error(__FILE__, __LINE__, "fatal", __VA_ARGS__)

#if UZRAM_DEBUG_LEVEL >= 1
#define ZS_DCHECK(cond, ...) ZS_CHECK(cond, __VA_ARGS__)
#else
#define ZS_DCHECK(cond, ...) \
  do {                       \
  } while (0)
#endif

#endif  // UZRAM_UTIL_CHECK_H_
