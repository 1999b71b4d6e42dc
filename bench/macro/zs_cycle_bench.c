/* zs_cycle_bench.c - the swap-like fill / read / free-all cycle through the zs_* C API
 * (include/uzram/zsmalloc.h only), against glibc malloc + memcpy + free with the same sizes
 * in the same process (docs/benchmarks.md#the-fill-read-free-all-cycle).
 *
 * Each round: fill N objects (zs_malloc + zs_obj_write | malloc + memcpy), read every
 * object (zs_obj_read_begin + memcpy + zs_obj_read_end | memcpy), free all (zs_free |
 * free); or with --batch, free all with zs_free_batch. Rounds alternate pool and glibc;
 * the best round of each phase counts. Sizes are lognormal (default: mean 1536 B, sigma
 * 0.45, so median ~1.36 KiB and ~96 MiB for 64 Ki objects; uzram-bench's model), clamped
 * to 1..4096; the bytes are slices of a 256 KiB random pattern (in cache, like a
 * compression buffer). Every object is checked once after the last round (untimed).
 * Reads are also timed in chunks of 512: the sum over the chunks of each chunk's fastest
 * round ("chunk minima") leaves out what a shared machine's preemption adds to a round,
 * which the best round of ~30 ms rarely escapes when other jobs compete for the CPUs.
 *
 *   zs-cycle-bench [--objects N] [--rounds R] [--mean B] [--sigma S] [--seed X]
 *                  [--order seq|random] [--batch] [--pause-ms MS] [--watch-rss S]
 *
 * --pause-ms sleeps between rounds (to see the decay policy return frames meanwhile).
 * --watch-rss S: after the last round, polls RSS every 100 ms for up to S seconds and
 * reports when the pool's frames (its total_pages at the last fill) have left it - the
 * idle-frame decay at the default options (docs/design.md#frames).
 * Output: one line per round, then the best rounds and the ratios pool / glibc. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "uzram/zsmalloc.h"

enum { kPattern = 256 << 10, kMaxObject = 4096, kChunk = 512 };

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (!f) return -1;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  fclose(f);
  return (long)(resident * (unsigned long)sysconf(_SC_PAGESIZE) / 1024);
}

struct phase {
  double fill, read, free;
};

static void usage(void) {
  fprintf(stderr,
          "usage: zs-cycle-bench [--objects N] [--rounds R] [--mean B] [--sigma S] [--seed X]\n"
          "                      [--order seq|random] [--batch] [--pause-ms MS] [--watch-rss S]\n");
  exit(2);
}

int main(int argc, char** argv) {
  size_t n = 65536;
  int rounds = 8, batch = 0, random_order = 0;
  double mean = 1536.0, sigma = 0.45;
  unsigned long long seed = 1;
  long pause_ms = 0;
  double watch_s = 0;
  unsigned long pool_pages = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--batch")) {
      batch = 1;
      continue;
    }
    if (!v) usage();
    i++;
    if (!strcmp(a, "--objects"))
      n = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--rounds"))
      rounds = atoi(v);
    else if (!strcmp(a, "--mean"))
      mean = atof(v);
    else if (!strcmp(a, "--sigma"))
      sigma = atof(v);
    else if (!strcmp(a, "--seed"))
      seed = strtoull(v, NULL, 0);
    else if (!strcmp(a, "--pause-ms"))
      pause_ms = atol(v);
    else if (!strcmp(a, "--watch-rss"))
      watch_s = atof(v);
    else if (!strcmp(a, "--order"))
      random_order = !strcmp(v, "random");
    else
      usage();
  }
  if (n == 0 || rounds <= 0 || mean <= 0 || sigma < 0) usage();

  unsigned* sizes = malloc(n * sizeof *sizes);
  unsigned* offs = malloc(n * sizeof *offs);
  size_t* order = malloc(n * sizeof *order);
  unsigned long* handles = malloc(n * sizeof *handles);
  void** ptrs = malloc(n * sizeof *ptrs);
  unsigned char* pattern = malloc(kPattern + kMaxObject);
  unsigned char* sink = aligned_alloc(64, kMaxObject);
  unsigned char* local_copy = aligned_alloc(64, kMaxObject);
  const size_t nchunks = (n + kChunk - 1) / kChunk;
  double* chunk_min[2] = {malloc(nchunks * sizeof(double)), malloc(nchunks * sizeof(double))};
  if (!sizes || !offs || !order || !handles || !ptrs || !pattern || !sink || !local_copy ||
      !chunk_min[0] || !chunk_min[1]) {
    fprintf(stderr, "zs-cycle-bench: out of memory\n");
    return 1;
  }
  rng_state = seed;
  for (size_t i = 0; i < kPattern + kMaxObject; i++) pattern[i] = (unsigned char)rng_next();
  const double mu = log(mean) - sigma * sigma / 2;
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    /* Box-Muller */
    const double u1 = rng_unit(), u2 = rng_unit();
    const double z = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-300)) * cos(2 * M_PI * u2);
    double s = exp(mu + sigma * z);
    if (s < 1) s = 1;
    if (s > kMaxObject) s = kMaxObject;
    sizes[i] = (unsigned)s;
    offs[i] = (unsigned)(rng_next() % (kPattern / 16)) * 16;
    order[i] = i;
    total += sizes[i];
  }
  if (random_order) {
    for (size_t i = n - 1; i > 0; i--) {
      const size_t j = rng_next() % (i + 1);
      const size_t t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }
  for (size_t c = 0; c < nchunks; c++) chunk_min[0][c] = chunk_min[1][c] = 1e300;
  struct zs_pool* pool = zs_create_pool("zs-cycle-bench");
  if (!pool) {
    fprintf(stderr, "zs-cycle-bench: zs_create_pool failed\n");
    return 1;
  }
  printf(
      "zs-cycle-bench: %zu objects, lognormal mean %.0f sigma %.2f, %.1f MiB, %d rounds,"
      " %s reads, %s frees\n",
      n, mean, sigma, total / 1048576.0, rounds, random_order ? "random" : "sequential",
      batch ? "zs_free_batch" : "zs_free");
  printf("%-6s %5s %10s %10s %10s %12s %10s\n", "round", "who", "fill ns", "read ns", "free ns",
         "fill+free ns", "RSS MiB");
  struct phase best_pool = {1e300, 1e300, 1e300}, best_glibc = {1e300, 1e300, 1e300};
  double best_pool_afw = 1e300, best_glibc_afw = 1e300;
  volatile unsigned char acc = 0;
  for (int r = 0; r < rounds; r++) {
    for (int who = 0; who < 2; who++) {
      struct phase p;
      double t0 = now_ns();
      if (who == 0) {
        for (size_t i = 0; i < n; i++) {
          const unsigned long h = zs_malloc(pool, sizes[i], GFP_KERNEL, NUMA_NO_NODE);
          if (IS_ERR_VALUE(h)) {
            fprintf(stderr, "zs-cycle-bench: zs_malloc(%u) failed\n", sizes[i]);
            return 1;
          }
          zs_obj_write(pool, h, pattern + offs[i], sizes[i]);
          handles[i] = h;
        }
      } else {
        for (size_t i = 0; i < n; i++) {
          void* m = malloc(sizes[i]);
          if (!m) return 1;
          memcpy(m, pattern + offs[i], sizes[i]);
          ptrs[i] = m;
        }
      }
      double t1 = now_ns();
      p.fill = (t1 - t0) / (double)n;
      for (size_t c = 0; c < nchunks; c++) {
        const size_t end = (c + 1) * kChunk < n ? (c + 1) * kChunk : n;
        const double c0 = now_ns();
        if (who == 0) {
          for (size_t k = c * kChunk; k < end; k++) {
            const size_t i = order[k];
            void* m = zs_obj_read_begin(pool, handles[i], local_copy);
            memcpy(sink, m, sizes[i]);
            zs_obj_read_end(pool, handles[i], m);
            acc ^= sink[sizes[i] - 1];
          }
        } else {
          for (size_t k = c * kChunk; k < end; k++) {
            const size_t i = order[k];
            memcpy(sink, ptrs[i], sizes[i]);
            acc ^= sink[sizes[i] - 1];
          }
        }
        const double dt = now_ns() - c0;
        if (dt < chunk_min[who][c]) chunk_min[who][c] = dt;
      }
      double t2 = now_ns();
      p.read = (t2 - t1) / (double)n;
      const long rss = rss_kib();
      if (who == 0) pool_pages = zs_get_total_pages(pool);
      if (r == rounds - 1 && who == 0) { /* check the contents once, untimed */
        for (size_t i = 0; i < n; i++) {
          void* m = zs_obj_read_begin(pool, handles[i], local_copy);
          if (memcmp(m, pattern + offs[i], sizes[i]) != 0) {
            fprintf(stderr, "zs-cycle-bench: object %zu corrupted\n", i);
            return 1;
          }
          zs_obj_read_end(pool, handles[i], m);
        }
        t2 = now_ns();
      }
      if (who == 0) {
        if (batch) {
          zs_free_batch(pool, handles, n);
        } else {
          for (size_t i = 0; i < n; i++) zs_free(pool, handles[i]);
        }
      } else {
        for (size_t i = 0; i < n; i++) free(ptrs[i]);
      }
      const double t3 = now_ns();
      p.free = (t3 - t2) / (double)n;
      struct phase* b = who == 0 ? &best_pool : &best_glibc;
      double* afw = who == 0 ? &best_pool_afw : &best_glibc_afw;
      if (p.fill < b->fill) b->fill = p.fill;
      if (p.read < b->read) b->read = p.read;
      if (p.free < b->free) b->free = p.free;
      if (p.fill + p.free < *afw) *afw = p.fill + p.free;
      printf("%-6d %5s %10.1f %10.1f %10.1f %12.1f %10.1f\n", r, who == 0 ? "pool" : "glibc",
             p.fill, p.read, p.free, p.fill + p.free, (double)rss / 1024.0);
      fflush(stdout);
    }
    if (pause_ms > 0) {
      struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  printf("best   pool  fill %.1f  read %.1f  free %.1f  fill+free %.1f ns\n", best_pool.fill,
         best_pool.read, best_pool.free, best_pool_afw);
  printf("best   glibc fill %.1f  read %.1f  free %.1f  fill+free %.1f ns\n", best_glibc.fill,
         best_glibc.read, best_glibc.free, best_glibc_afw);
  printf("ratio  alloc+write+free %.2fx  read %.2fx  (pool / glibc, best rounds)\n",
         best_pool_afw / best_glibc_afw, best_pool.read / best_glibc.read);
  double chunked[2] = {0, 0};
  for (int w = 0; w < 2; w++) {
    for (size_t c = 0; c < nchunks; c++) chunked[w] += chunk_min[w][c];
    chunked[w] /= (double)n;
  }
  printf("chunks read pool %.1f  glibc %.1f ns: read %.2fx  (sums of chunk minima)\n", chunked[0],
         chunked[1], chunked[0] / chunked[1]);
  printf("pool   total_pages %lu after free-all, RSS %.1f MiB\n", zs_get_total_pages(pool),
         (double)rss_kib() / 1024.0);
  if (watch_s > 0) {
    /* Everything is freed; glibc keeps what it keeps. The pool's idle frames leave RSS as
       they decay: wait until RSS has dropped by 95 % of the pool's last footprint. */
    const long r0 = rss_kib();
    const long want = (long)(pool_pages * 4 * 95 / 100);
    const double t0 = now_ns();
    double t = 0;
    long dropped = 0;
    while ((dropped = r0 - rss_kib()) < want && (t = (now_ns() - t0) / 1e9) < watch_s) {
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
    printf("rss    %.1f MiB of the pool's %.1f MiB left RSS after %.1f s%s\n", dropped / 1024.0,
           pool_pages * 4 / 1024.0, (now_ns() - t0) / 1e9,
           dropped < want ? " (not all: timed out)" : "");
  }
  zs_destroy_pool(pool);
  (void)acc;
  free(sizes);
  free(offs);
  free(order);
  free(handles);
  free(ptrs);
  free(pattern);
  free(sink);
  free(local_copy);
  free(chunk_min[0]);
  free(chunk_min[1]);
  return 0;
}
