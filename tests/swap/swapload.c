/* tests/swap/swapload.c - the guest's workload for tests/swap/swap.sh: allocates MIB MiB,
 * fills every page with a pattern that compresses about 3:1 and depends on the page number,
 * then checks every page PASSES times (sequentially, then in a scattered order), so that
 * with less RAM than MIB the pages go out to swap and come back. Prints one line
 *   SWAPLOAD ok|bad pages=N bad=B pswpout=O pswpin=I seconds=S
 * (pswpout/pswpin: /proc/vmstat pages swapped out/in meanwhile). Exit 0 when every page
 * read back as written. Static, for a busybox initramfs: cc -O2 -static. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t vmstat(const char* key) {
  char line[128];
  uint64_t v = 0;
  size_t n = strlen(key);
  FILE* f = fopen("/proc/vmstat", "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, n) == 0 && line[n] == ' ') v = strtoull(line + n + 1, NULL, 10);
  }
  fclose(f);
  return v;
}

/* Page i: 128 pseudo-random words, then 384 words of a low-entropy pattern of i. */
static void page(uint64_t i, uint64_t* w) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
  for (int k = 0; k < 128; k++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[k] = x;
  }
  for (int k = 128; k < 512; k++) w[k] = i * 0x0100000001ull + (uint64_t)(k / 64);
}

int main(int argc, char** argv) {
  const uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 300;
  const int passes = argc > 2 ? atoi(argv[2]) : 2;
  const uint64_t n = mib << 8;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const uint64_t out0 = vmstat("pswpout"), in0 = vmstat("pswpin");
  uint64_t* mem = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror("SWAPLOAD mmap");
    return 2;
  }
  for (uint64_t i = 0; i < n; i++) page(i, mem + i * 512);
  uint64_t bad = 0;
  static uint64_t want[512];
  for (int p = 0; p < passes; p++) {
    for (uint64_t j = 0; j < n; j++) {
      /* pass 0 in order, the others scattered (a stride coprime with n) */
      const uint64_t i = p == 0 ? j : (j * 7919 + (uint64_t)p) % n;
      page(i, want);
      if (memcmp(mem + i * 512, want, 4096) != 0) bad++;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("SWAPLOAD %s pages=%llu bad=%llu pswpout=%llu pswpin=%llu seconds=%.1f\n",
         bad ? "bad" : "ok", (unsigned long long)n, (unsigned long long)bad,
         (unsigned long long)(vmstat("pswpout") - out0),
         (unsigned long long)(vmstat("pswpin") - in0),
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  fflush(stdout);
  return bad ? 1 : 0;
}
