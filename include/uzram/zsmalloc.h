/* uzram/zsmalloc.h - the kernel's zsmalloc API (Linux 6.18 names, types and semantics),
 * usable from C and C++. A thin veneer over uzram::Pool (include/uzram/pool.h).
 *
 *   struct zs_pool *pool = zs_create_pool("demo");
 *   unsigned long h = zs_malloc(pool, 100, GFP_KERNEL, NUMA_NO_NODE);
 *   if (IS_ERR_VALUE(h)) ...            -EINVAL (size 0), -ENOSPC (> 4096), -ENOMEM
 *   zs_obj_write(pool, h, buf, 100);
 *   void *p = zs_obj_read_begin(pool, h, local_copy);   local_copy: >= 4096 bytes
 *   ... use p (may sleep) ...
 *   zs_obj_read_end(pool, h, p);
 *   zs_free(pool, h);                   or zs_free_batch(pool, handles, n)
 *   zs_destroy_pool(pool);
 *
 * Every function may be called from any thread concurrently. gfp and nid are accepted and
 * ignored. zs_create_pool uses chain size 8 (CONFIG_ZSMALLOC_CHAIN_SIZE default). */
#ifndef UZRAM_ZSMALLOC_H_
#define UZRAM_ZSMALLOC_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned int gfp_t;

/* Kernel allocation flags and helpers, for source compatibility (values are ignored). */
#ifndef __GFP_HIGHMEM
#define __GFP_HIGHMEM 0x02u
#endif
#ifndef __GFP_MOVABLE
#define __GFP_MOVABLE 0x08u
#endif
#ifndef __GFP_NOWARN
#define __GFP_NOWARN 0x2000u
#endif
#ifndef GFP_KERNEL
#define GFP_KERNEL 0xcc0u
#endif
#ifndef GFP_NOIO
#define GFP_NOIO 0xc00u
#endif
#ifndef GFP_NOWAIT
#define GFP_NOWAIT 0x800u
#endif
#ifndef GFP_ATOMIC
#define GFP_ATOMIC 0xa20u
#endif
#ifndef NUMA_NO_NODE
#define NUMA_NO_NODE (-1)
#endif
#ifndef MAX_ERRNO
#define MAX_ERRNO 4095
#endif
#ifndef IS_ERR_VALUE
#define IS_ERR_VALUE(x) ((unsigned long)(x) >= (unsigned long)-MAX_ERRNO)
#endif

struct zs_pool;

struct zs_pool_stats {
  /* How many pages were migrated (freed) by compaction, cumulative. */
  unsigned long pages_compacted;
};

struct zs_pool* zs_create_pool(const char* name);
void zs_destroy_pool(struct zs_pool* pool);

/* uzram: a pool with options (docs/units.md). Zero-initialise the struct: a field at 0
 * means its default, also for fields added later. */
struct zs_pool_options {
  /* 0 or 4096: the kernel's limit (larger sizes: -ENOSPC); up to 65536. With a larger
   * limit, zs_obj_read_begin's local_copy must hold the object (max_object_size bytes
   * suffice), and objects above 4096 bytes are always copied into it. */
  size_t max_object_size;
  /* 0: 8 (CONFIG_ZSMALLOC_CHAIN_SIZE); else 4..16. */
  unsigned int chain_size;
};
/* zs_create_pool(name) is zs_create_pool_ext(name, NULL). Returns NULL for an invalid
 * option or when out of memory. */
struct zs_pool* zs_create_pool_ext(const char* name, const struct zs_pool_options* opts);
/* The raw-storage threshold for data of max_object_size bytes: zs_huge_class_size scaled
 * by max_object_size / 4096 (equal to it for a pool made by zs_create_pool). */
size_t zs_huge_object_size(struct zs_pool* pool);

unsigned long zs_malloc(struct zs_pool* pool, size_t size, gfp_t flags, const int nid);
void zs_free(struct zs_pool* pool, unsigned long obj);
/* Frees n handles at once (uzram; not in the kernel): grouped by size class, so each
 * class lock is taken once per run of handles of that class, and zspages emptied by the
 * run are released after that lock is dropped (the 2026 zsmalloc deferred-free drain).
 * Handles may come in any order; 0 and error values are skipped, as zs_free skips them.
 * Like zs_free it aborts on an invalid or already freed handle, also when the same handle
 * appears twice in one batch (earlier handles of the batch may be freed by then). */
void zs_free_batch(struct zs_pool* pool, const unsigned long* handles, size_t n);

size_t zs_huge_class_size(struct zs_pool* pool);

/* Returns the object's bytes: in place when they lie in one frame or in adjacent frames,
 * else copied into local_copy (as the kernel: use the returned pointer, not local_copy). */
void* zs_obj_read_begin(struct zs_pool* pool, unsigned long handle, void* local_copy);
void zs_obj_read_end(struct zs_pool* pool, unsigned long handle, void* handle_mem);
void zs_obj_write(struct zs_pool* pool, unsigned long handle, const void* handle_mem,
                  size_t mem_len);

unsigned long zs_get_total_pages(struct zs_pool* pool);
unsigned long zs_compact(struct zs_pool* pool);

unsigned int zs_lookup_class_index(struct zs_pool* pool, unsigned int size);

/* The kernel names the function like the struct; C++ compilers with -Wshadow warn that
 * the function hides the struct's constructor. Harmless: callers write
 * `struct zs_pool_stats`, as in the kernel. */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
void zs_pool_stats(struct zs_pool* pool, struct zs_pool_stats* stats);
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* UZRAM_ZSMALLOC_H_ */
