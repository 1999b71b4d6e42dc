/* c_api_test.c - the kernel-compatible API (include/uzram/zsmalloc.h) used from plain C11,
 * as a kernel-style caller would. Prints "N passed, M failed"; exits non-zero on failure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uzram/zsmalloc.h"

static int passed, failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

enum { kObjects = 2000 };

static void fill(unsigned char* buf, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(seed * 2654435761u + i * 40503u);
}

static int same(const void* mem, size_t n, unsigned seed) {
  unsigned char want[4096];
  fill(want, n, seed);
  return memcmp(mem, want, n) == 0;
}

/* zs_create_pool_ext: the default keeps the kernel's limit; max_object_size allows up to
 * 64 KiB objects, read back through local_copy; invalid options give NULL. */
static void large_objects(void) {
  static unsigned char big[65536], copy[65536], want[65536];
  struct zs_pool_options o;
  memset(&o, 0, sizeof o);
  struct zs_pool* pool = zs_create_pool_ext("c_api_ext", &o);
  CHECK(pool != NULL);
  CHECK(zs_malloc(pool, 4097, 0, 0) == (unsigned long)-ENOSPC);
  zs_destroy_pool(pool);
  pool = zs_create_pool_ext("null_opts", NULL);
  CHECK(pool != NULL && zs_malloc(pool, 4097, 0, 0) == (unsigned long)-ENOSPC);
  if (pool) zs_destroy_pool(pool);

  o.max_object_size = 65537;
  CHECK(zs_create_pool_ext("bad", &o) == NULL);
  o.max_object_size = 2048;
  CHECK(zs_create_pool_ext("bad", &o) == NULL);
  o.max_object_size = 32768;
  o.chain_size = 17;
  CHECK(zs_create_pool_ext("bad", &o) == NULL);
  o.chain_size = 0;
  pool = zs_create_pool_ext("c_api_ext", &o);
  CHECK(pool != NULL);
  if (pool == NULL) return;
  CHECK(zs_huge_object_size(pool) == 8 * zs_huge_class_size(pool));
  CHECK(zs_malloc(pool, 32769, 0, 0) == (unsigned long)-ENOSPC);
  static const size_t sizes[] = {4097, 8192, 12345, 29000, 32768};
  unsigned long hs[5];
  for (unsigned i = 0; i < 5; i++) {
    hs[i] = zs_malloc(pool, sizes[i], 0, 0);
    CHECK(!IS_ERR_VALUE(hs[i]));
    for (size_t k = 0; k < sizes[i]; k++) big[k] = (unsigned char)(k * 7 + i);
    zs_obj_write(pool, hs[i], big, sizes[i]);
  }
  int ok = 1;
  for (unsigned i = 0; i < 5; i++) {
    for (size_t k = 0; k < sizes[i]; k++) want[k] = (unsigned char)(k * 7 + i);
    void* mem = zs_obj_read_begin(pool, hs[i], copy);
    if (memcmp(mem, want, sizes[i]) != 0) ok = 0;
    zs_obj_read_end(pool, hs[i], mem);
  }
  CHECK(ok);
  zs_compact(pool);
  zs_free_batch(pool, hs, 5);
  CHECK(zs_get_total_pages(pool) == 0);
  zs_destroy_pool(pool);
}

int main(void) {
  static unsigned long handles[kObjects];
  static size_t sizes[kObjects];
  static unsigned char local_copy[4096];
  unsigned char buf[4096];
  struct zs_pool* pool = zs_create_pool("c_api_test");
  CHECK(pool != NULL);
  if (pool == NULL) return 1;

  CHECK(zs_huge_class_size(pool) == 3625);
  CHECK(zs_lookup_class_index(pool, 3632) == 225);
  CHECK(zs_lookup_class_index(pool, 3633) == 254);
  CHECK(zs_lookup_class_index(pool, 32) == 0);
  CHECK(zs_get_total_pages(pool) == 0);

  /* Error values. */
  unsigned long e = zs_malloc(pool, 0, GFP_KERNEL | __GFP_NOWARN, NUMA_NO_NODE);
  CHECK(IS_ERR_VALUE(e) && e == (unsigned long)-EINVAL);
  e = zs_malloc(pool, 4097, GFP_KERNEL | __GFP_NOWARN, NUMA_NO_NODE);
  CHECK(IS_ERR_VALUE(e) && e == (unsigned long)-ENOSPC);
  zs_free(pool, e); /* ignored */
  zs_free(pool, 0); /* ignored */

  /* Store objects of many sizes, spanning frames or not. */
  int all_ok = 1;
  for (unsigned i = 0; i < kObjects; i++) {
    sizes[i] = 1 + (i * 97u) % 4096u;
    handles[i] = zs_malloc(pool, sizes[i], GFP_KERNEL | __GFP_NOWARN, NUMA_NO_NODE);
    if (IS_ERR_VALUE(handles[i]) || handles[i] == 0) {
      all_ok = 0;
      continue;
    }
    fill(buf, sizes[i], i);
    zs_obj_write(pool, handles[i], buf, sizes[i]);
  }
  CHECK(all_ok);
  CHECK(zs_get_total_pages(pool) > 0);

  all_ok = 1;
  for (unsigned i = 0; i < kObjects; i++) {
    void* mem = zs_obj_read_begin(pool, handles[i], local_copy);
    if (mem == NULL || !same(mem, sizes[i], i)) all_ok = 0;
    zs_obj_read_end(pool, handles[i], mem);
  }
  CHECK(all_ok);

  /* Free three quarters, compact, check every survivor. */
  for (unsigned i = 0; i < kObjects; i++) {
    if (i % 4 != 0) {
      zs_free(pool, handles[i]);
      handles[i] = 0;
    }
  }
  unsigned long before = zs_get_total_pages(pool);
  unsigned long freed = zs_compact(pool);
  CHECK(freed > 0);
  CHECK(zs_get_total_pages(pool) == before - freed);
  struct zs_pool_stats stats;
  memset(&stats, 0, sizeof stats);
  zs_pool_stats(pool, &stats);
  CHECK(stats.pages_compacted == freed);
  CHECK(zs_compact(pool) == 0);

  all_ok = 1;
  for (unsigned i = 0; i < kObjects; i += 4) {
    void* mem = zs_obj_read_begin(pool, handles[i], local_copy);
    if (!same(mem, sizes[i], i)) all_ok = 0;
    zs_obj_read_end(pool, handles[i], mem);
    if (i % 8 == 0) {
      zs_free(pool, handles[i]);
      handles[i] = 0;
    }
  }
  CHECK(all_ok);
  /* The rest in one batch: the zeros of freed slots and error values are skipped. */
  handles[1] = (unsigned long)-ENOMEM;
  zs_free_batch(pool, handles, kObjects);
  zs_free_batch(pool, handles, 0);
  CHECK(zs_get_total_pages(pool) == 0);
  CHECK(zs_huge_object_size(pool) == zs_huge_class_size(pool));
  zs_destroy_pool(pool);

  large_objects();
  printf("c_api_test: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
