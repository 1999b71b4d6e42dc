/* prog.c - a program built against an installed uzram with only pkg-config's flags:
 * exercises the zs_* API and prints "ok". Used by check-install.sh. */
#include <stdio.h>
#include <string.h>

#include <uzram/zsmalloc.h>

#define FAIL(msg)                       \
  do {                                  \
    fprintf(stderr, "prog: %s\n", msg); \
    return 1;                           \
  } while (0)

int main(void) {
  static unsigned char local_copy[4096];
  unsigned long h[64];
  unsigned char buf[3000];
  struct zs_pool* pool = zs_create_pool("install-check");
  if (pool == NULL) FAIL("zs_create_pool failed");
  if (zs_huge_class_size(pool) != 3625) FAIL("zs_huge_class_size != 3625");
  if (!IS_ERR_VALUE(zs_malloc(pool, 0, GFP_KERNEL, NUMA_NO_NODE))) FAIL("zs_malloc(0) succeeded");
  for (int i = 0; i < 64; i++) {
    h[i] = zs_malloc(pool, 1000 + i * 31, GFP_KERNEL | __GFP_NOWARN, NUMA_NO_NODE);
    if (IS_ERR_VALUE(h[i])) FAIL("zs_malloc failed");
    memset(buf, i, sizeof buf);
    zs_obj_write(pool, h[i], buf, 1000 + i * 31);
  }
  for (int i = 0; i < 64; i += 2) zs_free(pool, h[i]);
  (void)zs_compact(pool);
  for (int i = 1; i < 64; i += 2) {
    const unsigned char* p = zs_obj_read_begin(pool, h[i], local_copy);
    memset(buf, i, sizeof buf);
    const int same = memcmp(p, buf, 1000 + i * 31) == 0;
    zs_obj_read_end(pool, h[i], (void*)p);
    if (!same) FAIL("object bytes changed");
    zs_free(pool, h[i]);
  }
  if (zs_get_total_pages(pool) != 0) FAIL("pages left after freeing everything");
  zs_destroy_pool(pool);
  printf("ok\n");
  return 0;
}
