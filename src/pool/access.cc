// pool/access.cc - object access: read_begin/read_end, write, and the chain copy helpers.
#include <algorithm>
#include <cstring>

#include "pool/pool_impl.h"
#include "pool/read_ahead.h"
#include "util/check.h"

namespace uzram {

// ---- The public face: one branch on the pool's translation policy ---------------------

const void* Pool::read_begin(Handle h, void* local_copy) noexcept {
  PoolImpl* p = impl(this);
  if (__builtin_expect(p->kernel_rwlock(), 0)) {
    return p->read_begin_impl<KernelTranslation>(h, local_copy);
  }
  return p->read_begin_impl<ValidatedTranslation>(h, local_copy);
}
void Pool::read_end(Handle h, const void*) noexcept { impl(this)->read_end_impl(h); }
void Pool::write(Handle h, const void* src, std::size_t len) noexcept {
  PoolImpl* p = impl(this);
  if (__builtin_expect(p->kernel_rwlock(), 0)) {
    p->write_impl<KernelTranslation>(h, src, len);
  } else {
    p->write_impl<ValidatedTranslation>(h, src, len);
  }
}

thread_local std::uint32_t ReadStreams::last_[kSlots];

// ---- Translation ---------------------------------------------------------------------

// Protocol: docs/locking.md#read steps 1-3.
template <typename T>
std::uint64_t PoolImpl::lock_object(Handle h, const char* op, ZsPage*& z) noexcept {
  std::atomic<std::uint64_t>* e = entry_of(h, op);
  for (;;) {
    if constexpr (T::kPoolLock) pool_lock_.lock_shared();
    // acquire: pairs with the release stores publishing a location (alloc, compaction).
    const std::uint64_t v = e->load(std::memory_order_acquire);
    check_entry(v, h, op);
    z = zspages_.get(HandleTable::decode(v).zspage);
    z->lock.lock_read();
    if constexpr (T::kPoolLock) {
      pool_lock_.unlock_shared();
      return v;
    } else {
      // Validate: while we hold the read lock the object cannot leave z, so if the entry
      // still names z it is there. acquire, not relaxed: the entry may have been
      // re-published with the very value we loaded first (the object moved away and back,
      // the ABA case the Promela model finds), and only this load then pairs with the
      // release store that followed the copy of its bytes into z.
      if (e->load(std::memory_order_acquire) == v) return v;
      z->lock.unlock_read();
    }
  }
}

void PoolImpl::copy_out(const ZsPage* z, std::size_t off, void* dst,
                        std::size_t len) const noexcept {
  auto* d = static_cast<std::byte*>(dst);
  while (len) {
    const std::size_t n = contiguous_bytes(z, off, len);
    std::memcpy(d, chain_addr(z, off), n);
    d += n;
    off += n;
    len -= n;
  }
}

void PoolImpl::copy_in(ZsPage* z, std::size_t off, const void* src, std::size_t len) noexcept {
  auto* s = static_cast<const std::byte*>(src);
  while (len) {
    const std::size_t n = contiguous_bytes(z, off, len);
    std::memcpy(chain_addr(z, off), s, n);
    s += n;
    off += n;
    len -= n;
  }
}

void PoolImpl::copy_between(const ZsPage* from, std::size_t from_off, ZsPage* to,
                            std::size_t to_off, std::size_t len) noexcept {
  while (len) {
    const std::size_t a = kFrameSize - (from_off & (kFrameSize - 1));
    const std::size_t b = kFrameSize - (to_off & (kFrameSize - 1));
    const std::size_t n = std::min({len, a, b});
    std::memcpy(chain_addr(to, to_off), chain_addr(from, from_off), n);
    from_off += n;
    to_off += n;
    len -= n;
  }
}

// Steps 4-5 of docs/locking.md#read: returns with z's read lock held (read_end drops it).
template <typename T>
const void* PoolImpl::read_begin_impl(Handle h, void* local_copy) noexcept {
  ZsPage* z;
  const std::uint64_t v = lock_object<T>(h, "read_begin", z);
  // The handle's class is its index's group (no read of the descriptor's class field).
  const std::uint32_t index = HandleTable::index_of(static_cast<std::uint64_t>(h));
  const SizeClass& c = classes_[handles_.group_of(index)];
  if (is_run_class(c.index)) {  // a large object: gather run and tail, hold no lock after
    const std::uint32_t size = HandleTable::decode_large(v).size;
    const Handle tail = tail_of(index);
    if (local_copy == nullptr) {
      z->lock.unlock_read();
      ZS_FATAL("read_begin: object of %u bytes is larger than a frame and local_copy is NULL",
               size);
    }
    const std::size_t run =
        std::min<std::size_t>(size, std::size_t{c.pages_per_zspage} * kFrameSize);
    copy_out(z, 0, local_copy, run);
    z->lock.unlock_read();
    if (tail != Handle{0}) {
      tail_copy<T>(tail, static_cast<std::byte*>(local_copy) + run, size - run, false);
    }
    return local_copy;
  }
  const Location loc = HandleTable::decode(v);
  const std::size_t off = payload_offset(c, loc.obj);
  const std::byte* mem = chain_addr(z, off);  // in place: in one frame, or adjacent ones
  // A read of the slot after this thread's previous read of the class: the reader walks
  // the class in slot order (pool/read_ahead.h), and this object was prefetched into L2
  // by that read. Ask for the next one now.
  const bool stream = ReadStreams::follows(c.index, loc.zspage, loc.obj);
  if (stream) read_ahead(c, z, loc.obj, index);
  if ((off & (kFrameSize - 1)) + loc.size > kFrameSize) {
    // Checked whether or not the frames are adjacent: the contract does not depend on
    // where the arena put them.
    ZS_CHECK(local_copy != nullptr,
             "read_begin: object of %u bytes spans two frames and local_copy is NULL", loc.size);
    if (contiguous_bytes(z, off, loc.size) < loc.size) {
      copy_out(z, off, local_copy, loc.size);
      z->lock.leave_read_held();  // until read_end
      return local_copy;
    }
  }
  // The caller reads the whole object next (zram decompresses it): ask for all its lines
  // now rather than as its copy reaches them, unless read_ahead already brought them to
  // L2. Locality 0 (prefetchnta): measured better than into all levels, which slowed
  // random order (docs/benchmarks.md#reads-what-they-cost-and-what-changed).
  if (!stream) prefetch_lines<0>(mem, loc.size);
  z->lock.leave_read_held();  // until read_end
  return mem;
}

// The next slot of z (slot obj + 1, if z has one) into L2, and the line of the class's
// handle entries after this one (in slot order a class's objects have consecutive
// indexes, docs/design.md#free-lists). Caller holds z's read lock (its frame ids).
void PoolImpl::read_ahead(const SizeClass& c, const ZsPage* z, unsigned obj,
                          std::uint32_t index) const noexcept {
  if ((index & (HandleTable::kChunkEntries - 1)) < HandleTable::kChunkEntries - 8) {
    __builtin_prefetch(handles_.entry(index) + 8, 0, 3);
  }
  if (obj + 2 >= c.objs_per_zspage && c.objs_per_zspage >= 3) next_zspage_hint(c, obj, index);
  if (obj + 1 >= c.objs_per_zspage) return;
  const std::size_t next = payload_offset(c, obj + 1);
  const std::size_t in_frame = kFrameSize - (next & (kFrameSize - 1));
  if (in_frame >= c.size) {
    prefetch_lines<2>(chain_addr(z, next), c.size);
  } else {  // the slot straddles: its two frames need not be adjacent
    prefetch_lines<2>(chain_addr(z, next), in_frame);
    prefetch_lines<2>(chain_addr(z, next + in_frame), c.size - in_frame);
  }
}

// The end of a zspage: the reader's next object of the class is the first slot of the
// zspage the class filled next, whose first slot has the next handle index when the
// class's zspages are filled and reused in order (spares are reused first in, first out:
// pool.cc). Two steps, one class read apart, so that neither waits for a miss: at the
// second-to-last slot prefetch that zspage's descriptor; at the last slot read its first
// frame id and prefetch its first slot (slot 0 lies in frame 0). No lock is taken: the
// entry, the descriptor's class and its frame id are read as hints (relaxed; a frame id
// is written with atomic stores, pool.cc and migration.cc), and a stale one only costs a
// useless prefetch - descriptors and frames are never unmapped while the pool lives.
void PoolImpl::next_zspage_hint(const SizeClass& c, unsigned obj,
                                std::uint32_t index) const noexcept {
  const unsigned ahead = c.objs_per_zspage - obj;  // 2: second-to-last slot, 1: the last
  const std::atomic<std::uint64_t>* e = handles_.entry(index + ahead);
  if (e == nullptr || handles_.group_of(index + ahead) != c.index) return;
  // relaxed: a hint (above).
  const std::uint64_t w = e->load(std::memory_order_relaxed);
  const Location l = HandleTable::decode(w);
  if (!HandleTable::is_allocated(w) || l.obj != 0) return;
  const ZsPage* y = zspages_.get(l.zspage);
  if (ahead == 2) {
    __builtin_prefetch(y, 1, 3);  // with intent to write: its reader takes the lock
    return;
  }
  // relaxed: a hint; written with relaxed atomic stores (pool.cc, migration.cc).
  const FrameId f = __atomic_load_n(&y->frames[0], __ATOMIC_RELAXED);
  if (f < arena_.high_water()) prefetch_lines<2>(arena_.address(f), c.size);
}

// Step 6 of docs/locking.md#read.
void PoolImpl::read_end_impl(Handle h) noexcept {
  std::atomic<std::uint64_t>* e = entry_of(h, "read_end");
  // relaxed: the object cannot move or be freed (by a correct caller) while we hold the
  // zspage read lock taken in read_begin, so the entry is the one we validated.
  const std::uint64_t v = e->load(std::memory_order_relaxed);
  check_entry(v, h, "read_end");
  // A large object's read_begin returned with no lock held.
  if (is_run_class(handles_.group_of(HandleTable::index_of(static_cast<std::uint64_t>(h))))) {
    return;
  }
  ZsPage* z = zspages_.get(HandleTable::decode(v).zspage);
  z->lock.assert_read_held();  // taken by read_begin
  z->lock.unlock_read();
}

// docs/locking.md#write.
template <typename T>
void PoolImpl::write_impl(Handle h, const void* src, std::size_t len) noexcept {
  ZsPage* z;
  const std::uint64_t v = lock_object<T>(h, "write", z);
  const std::uint32_t index = HandleTable::index_of(static_cast<std::uint64_t>(h));
  const SizeClass& c = classes_[handles_.group_of(index)];
  const bool large = is_run_class(c.index);
  const Location loc = large ? HandleTable::decode_large(v) : HandleTable::decode(v);
  if (len > loc.size) {
    z->lock.unlock_read();
    ZS_FATAL("write: %zu bytes into an object of %u bytes (handle %#llx)", len, loc.size,
             static_cast<unsigned long long>(h));
  }
  if (!large) {
    copy_in(z, payload_offset(c, loc.obj), src, len);
    z->lock.unlock_read();
    return;
  }
  // A large object: the run's part under the run's read lock, then the tail's under its.
  const std::size_t run = std::min<std::size_t>(len, std::size_t{c.pages_per_zspage} * kFrameSize);
  const Handle tail = tail_of(index);
  copy_in(z, 0, src, run);
  z->lock.unlock_read();
  if (len > run) {
    tail_copy<T>(tail, const_cast<std::byte*>(static_cast<const std::byte*>(src)) + run, len - run,
                 true);
  }
}

template <typename T>
void PoolImpl::tail_copy(Handle tail, void* buf, std::size_t len, bool in) noexcept {
  ZsPage* z;
  const std::uint64_t v = lock_object<T>(tail, in ? "write" : "read_begin", z);
  const Location loc = HandleTable::decode(v);
  ZS_CHECK(len <= loc.size, "large object: tail of %u bytes, %zu expected", loc.size, len);
  const SizeClass& c =
      classes_[handles_.group_of(HandleTable::index_of(static_cast<std::uint64_t>(tail)))];
  if (in) {
    copy_in(z, payload_offset(c, loc.obj), buf, len);
  } else {
    copy_out(z, payload_offset(c, loc.obj), buf, len);
  }
  z->lock.unlock_read();
}

std::size_t PoolImpl::object_size_impl(Handle h) const noexcept {
  const std::uint64_t v = entry_of(h, "object_size")->load(std::memory_order_acquire);
  check_entry(v, h, "object_size");
  if (is_run_class(handles_.group_of(HandleTable::index_of(static_cast<std::uint64_t>(h))))) {
    return HandleTable::decode_large(v).size;
  }
  return HandleTable::decode(v).size;
}

}  // namespace uzram
