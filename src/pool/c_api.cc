// pool/c_api.cc - the kernel-compatible zs_* C API: a thin veneer over uzram::Pool.
#include <cerrno>

#include "uzram/pool.h"
#include "uzram/zsmalloc.h"

using uzram::Errc;
using uzram::Handle;
using uzram::Pool;

namespace {

Pool* P(zs_pool* p) { return reinterpret_cast<Pool*>(p); }

unsigned long err(long e) { return static_cast<unsigned long>(-e); }

}  // namespace

extern "C" {

struct zs_pool* zs_create_pool(const char* name) {
  return zs_create_pool_ext(name, nullptr);
}

struct zs_pool* zs_create_pool_ext(const char* name, const struct zs_pool_options* opts) {
  uzram::PoolOptions o;
  o.name = name ? name : "";
  if (opts) {
    if (opts->max_object_size != 0) o.max_object_size = opts->max_object_size;
    if (opts->chain_size != 0) o.chain_size = opts->chain_size;
  }
  auto r = Pool::create(o);
  if (!r) return nullptr;
  return reinterpret_cast<zs_pool*>(std::move(r).value().release());
}

size_t zs_huge_object_size(struct zs_pool* pool) { return P(pool)->huge_object_size(); }

void zs_destroy_pool(struct zs_pool* pool) { delete P(pool); }

unsigned long zs_malloc(struct zs_pool* pool, size_t size, gfp_t, const int) {
  auto r = P(pool)->alloc(size);
  if (r) return static_cast<unsigned long>(*r);
  if (r.error() == Errc::invalid_argument) return err(EINVAL);
  if (r.error() == Errc::too_large) return err(ENOSPC);
  return err(ENOMEM);
}

void zs_free(struct zs_pool* pool, unsigned long obj) {
  const unsigned long handle = obj;
  if (handle == 0 || IS_ERR_VALUE(handle)) return;  // the kernel ignores NULL/ERR handles
  P(pool)->free(static_cast<Handle>(handle));
}

void zs_free_batch(struct zs_pool* pool, const unsigned long* handles, size_t n) {
  static_assert(sizeof(unsigned long) == sizeof(Handle), "handles are 64-bit");
  // Zero and error values are skipped as zs_free skips them; the pool's free_batch skips
  // only zero, so a batch holding error values goes through a filtered copy.
  std::size_t i = 0;
  while (i < n && !IS_ERR_VALUE(handles[i])) i++;
  if (i == n) {
    P(pool)->free_batch(reinterpret_cast<const Handle*>(handles), n);
    return;
  }
  P(pool)->free_batch(reinterpret_cast<const Handle*>(handles), i);
  constexpr std::size_t kCopy = 256;
  Handle copy[kCopy];
  while (i < n) {
    std::size_t k = 0;
    for (; i < n && k < kCopy; i++) {
      if (!IS_ERR_VALUE(handles[i])) copy[k++] = static_cast<Handle>(handles[i]);
    }
    P(pool)->free_batch(copy, k);
  }
}

size_t zs_huge_class_size(struct zs_pool* pool) { return P(pool)->huge_class_size(); }

void* zs_obj_read_begin(struct zs_pool* pool, unsigned long handle, void* local_copy) {
  return const_cast<void*>(P(pool)->read_begin(static_cast<Handle>(handle), local_copy));
}

void zs_obj_read_end(struct zs_pool* pool, unsigned long handle, void* handle_mem) {
  P(pool)->read_end(static_cast<Handle>(handle), handle_mem);
}

void zs_obj_write(struct zs_pool* pool, unsigned long handle, const void* handle_mem,
                  size_t mem_len) {
  P(pool)->write(static_cast<Handle>(handle), handle_mem, mem_len);
}

unsigned long zs_get_total_pages(struct zs_pool* pool) { return P(pool)->total_pages(); }

unsigned long zs_compact(struct zs_pool* pool) { return P(pool)->compact(); }

unsigned int zs_lookup_class_index(struct zs_pool* pool, unsigned int size) {
  return P(pool)->lookup_class_index(size);
}

void zs_pool_stats(struct zs_pool* pool, struct zs_pool_stats* stats) {
  stats->pages_compacted = P(pool)->stats().pages_compacted;
}

}  // extern "C"
