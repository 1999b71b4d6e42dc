/* micro/region_populate.c - what populating a 2 MiB region of fresh anonymous memory costs,
 * as the frame arena does it (docs/design.md#huge-pages): MADV_HUGEPAGE, MADV_POPULATE_WRITE,
 * MADV_NOHUGEPAGE ("huge"), or MADV_POPULATE_WRITE alone in a MADV_NOHUGEPAGE mapping (4 KiB
 * pages, "small"); then the same regions again after MADV_DONTNEED (memory just freed).
 *
 *   uzram-region-populate [huge|small] [regions]     (default: huge 48)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void populate(char* p, size_t bytes, int huge) {
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
  if (madvise(p, bytes, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
  if (huge) madvise(p, bytes, MADV_NOHUGEPAGE);
}

int main(int argc, char** argv) {
  const int huge = argc < 2 || strcmp(argv[1], "small") != 0;
  const int n = argc > 2 ? atoi(argv[2]) : 48;
  const size_t region = (size_t)2 << 20;
  if (n <= 0) {
    fprintf(stderr, "usage: uzram-region-populate [huge|small] [regions]\n");
    return 2;
  }
  char* raw = mmap(NULL, (size_t)(n + 1) * region, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  char* base = (char*)(((uintptr_t)raw + region - 1) & ~(uintptr_t)(region - 1));
  madvise(base, (size_t)n * region, MADV_NOHUGEPAGE);
  for (int pass = 0; pass < 2; pass++) {
    double lo = 1e18, hi = 0;
    const double t0 = now_ns();
    for (int r = 0; r < n; r++) {
      const double t = now_ns();
      populate(base + (size_t)r * region, region, huge);
      const double d = now_ns() - t;
      if (d < lo) lo = d;
      if (d > hi) hi = d;
    }
    printf("%s, %d regions, %s: total %.1f ms, per region %.0f-%.0f us\n", huge ? "huge" : "small",
           n, pass ? "after MADV_DONTNEED" : "fresh", (now_ns() - t0) / 1e6, lo / 1e3, hi / 1e3);
    madvise(base, (size_t)n * region, MADV_DONTNEED);
  }
  return 0;
}
