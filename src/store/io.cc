// store/io.cc - block write, read, discard and free notification. Protocols:
// docs/store.md#write, #read, #discard (they follow zram 6.17+, after the Sep-2025 fix:
// old contents are freed when the new ones are published, under the slot lock).
#include <cstring>
#include <mutex>

#include "store/same_filled.h"
#include "store/store_impl.h"
#include "store/unit.h"
#include "util/check.h"

namespace uzram {

void StoreImpl::free_slot_locked(Slot& s, HandleBatch* batch) noexcept {
  const std::uint32_t f = s.get();
  ZS_CHECK(!(f & (slotf::kUnit | slotf::kMember)), "free_slot_locked on a unit's slot (%#x)", f);
  const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
  if (f & slotf::kSame) {
    stats_.same_pages.fetch_sub(1, std::memory_order_relaxed);
    stats_.pages_stored.fetch_sub(1, std::memory_order_relaxed);
  } else if (f & slotf::kWb) {
    stats_.bd_count.fetch_sub(1, std::memory_order_relaxed);
    stats_.pages_stored.fetch_sub(1, std::memory_order_relaxed);
    free_backing_block(h);
  } else if (f & slotf::kSizeMask) {
    if (batch) {
      batch->add(static_cast<Handle>(h));
    } else {
      pool_->free(static_cast<Handle>(h));
    }
    stats_.compr_data_size.fetch_sub(f & slotf::kSizeMask, std::memory_order_relaxed);
    stats_.pages_stored.fetch_sub(1, std::memory_order_relaxed);
    if (f & slotf::kHuge) stats_.huge_pages.fetch_sub(1, std::memory_order_relaxed);
  }
  s.handle.store(0, std::memory_order_relaxed);
  s.set(0);  // keeps only the lock bit
}

void StoreImpl::mark_accessed_locked(Slot& s) noexcept {
  s.set(s.get() & ~(slotf::kIdle | slotf::kPpSlot | slotf::kLock));
  s.ac_time.store(now_seconds(), std::memory_order_relaxed);
}

void StoreImpl::touch_locked(Slot& u, Slot& s) noexcept {
  mark_accessed_locked(s);
  if (&u != &s && (u.get() & slotf::kUnit)) mark_accessed_locked(u);
}

bool StoreImpl::can_store(std::size_t len, std::size_t freed) noexcept {
  const std::uint64_t pages = pool_->total_pages();
  std::uint64_t max = stats_.max_used_pages.load(std::memory_order_relaxed);
  while (pages > max &&
         !stats_.max_used_pages.compare_exchange_weak(max, pages, std::memory_order_relaxed)) {
  }
  if (pages > policy_.high_pages()) policy_.over_high();  // the memory reaction's cue
  const std::uint64_t limit = mem_limit_pages_.load(std::memory_order_relaxed);
  if (limit == 0 || pages <= limit) return true;
  // A rewrite that does not grow what is stored: refusing it would refuse every rewrite
  // of a full store whose classes are packed (the new object needs a zspage of its own
  // before the old one is freed), and a client that retries refused writes (the kernel's
  // swap) would wait forever. The room it takes is reused by the next rewrites.
  return len <= freed && pages <= limit + kRewriteRoom / kBlockSize;
}

std::size_t StoreImpl::held_bytes(std::uint64_t index, unsigned count) const noexcept {
  std::size_t bytes = 0;
  for (unsigned i = 0; i < count; i++) {
    const std::uint32_t f = slots_[index + i].get();
    if (!(f & (slotf::kSame | slotf::kWb))) bytes += f & slotf::kSizeMask;
  }
  return bytes;
}

Result<void> StoreImpl::do_write(std::uint64_t index, const void* block) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_) return Errc::not_initialized;
  if (index >= nslots_) return Errc::out_of_range;
  return write_one(index, block);
}

// A block of a stored unit is a partial write (write_piece); else the protocol of
// docs/store.md#write, under the block's unit lock.
Result<void> StoreImpl::write_one(std::uint64_t index, const void* block) noexcept {
  if (in_unit(index) && (unit_lock(index).flags.load(std::memory_order_relaxed) & slotf::kUnit)) {
    return write_piece(index, 1, static_cast<const unsigned char*>(block));
  }
  return write_block(index, block);
}

// Protocol: docs/store.md#write. The unit lock is the slot's own without units; with them,
// a whole-unit write may store the range as a unit before step 7: the block is then a
// partial write of that unit.
Result<void> StoreImpl::write_block(std::uint64_t index, const void* block) noexcept {
  summary_.note(index);  // before anything is published in the slot (slot_summary.h)
  Slot& s = slots_[index];
  Slot& u = unit_lock(index);
  std::uint64_t word;
  if (same_filled(block, &word)) {  // step 1: metadata only
    u.lock();
    if (u.get() & slotf::kUnit) return write_into_unit_locked(u, index, block, Handle{0});
    s.held_by(u);
    free_slot_locked(s);
    s.handle.store(word, std::memory_order_relaxed);
    s.set(slotf::kSame);
    mark_accessed_locked(s);
    u.unlock();
    stats_.same_pages.fetch_add(1, std::memory_order_relaxed);
    stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  Stream& st = streams_[0].get();  // step 2: compress, slot unlocked
  auto clen = st.codec->compress(block, kBlockSize, st.buffer, sizeof st.buffer);
  if (!clen) {
    StreamPool::put(st);
    stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
    return clen.error();
  }
  const bool huge = *clen >= huge_class_size_;  // step 3: store raw
  const std::size_t len = huge ? kBlockSize : *clen;
  auto h = pool_->alloc(len);  // step 4
  if (!h) {
    StreamPool::put(st);
    stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
    return h.error();
  }
  // step 5: mem_limit, checked after allocating as in the kernel. With a policy that can
  // make room, the write waits for it (step 6a) instead of failing.
  const bool over = !can_store(len, held_bytes(index, 1));
  if (over && !policy_.reacts()) {
    StreamPool::put(st);
    pool_->free(*h);
    stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
    return Errc::limit_reached;
  }
  pool_->write(*h, huge ? block : st.buffer, len);  // step 6
  StreamPool::put(st);
  if (over && !policy_.wait_for_room()) {  // step 6a: no slot lock, no stream held
    pool_->free(*h);
    stats_.failed_writes.fetch_add(1, std::memory_order_relaxed);
    return Errc::limit_reached;
  }
  u.lock();  // step 7: publish; free the old contents only now
  if (u.get() & slotf::kUnit) return write_into_unit_locked(u, index, block, *h);
  s.held_by(u);
  free_slot_locked(s);
  s.handle.store(static_cast<std::uint64_t>(*h), std::memory_order_relaxed);
  s.set(static_cast<std::uint32_t>(len) | (huge ? slotf::kHuge : 0));
  mark_accessed_locked(s);  // step 8
  u.unlock();
  stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
  stats_.compr_data_size.fetch_add(len, std::memory_order_relaxed);
  if (huge) {
    stats_.huge_pages.fetch_add(1, std::memory_order_relaxed);
    stats_.huge_pages_since.fetch_add(1, std::memory_order_relaxed);
  }
  return {};
}

// A block write found its range stored as a unit at step 7: the object it made for the
// block (if any) goes, and the block is written into the unit as a partial write, with
// write_piece's wait for room (the policy's) when the unit's re-encoding meets mem_limit.
// Unlocks u.
Result<void> StoreImpl::write_into_unit_locked(Slot& u, std::uint64_t index, const void* block,
                                               Handle made) noexcept {
  if (made != Handle{0}) pool_->free(made);
  u.unlock();
  return write_piece(index, 1, static_cast<const unsigned char*>(block));
}

// Caller holds the slot lock (and init_lock_ shared).
Result<void> StoreImpl::load_locked(Slot& s, void* block) noexcept {
  const std::uint32_t f = s.get();
  const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
  if (f & slotf::kSame) {
    fill_word(block, h);
    return {};
  }
  if (f & slotf::kWb) return read_backing_block(s, h, block);
  const std::uint32_t size = f & slotf::kSizeMask;
  if (size == 0) {  // never written, or discarded
    std::memset(block, 0, kBlockSize);
    return {};
  }
  const auto handle = static_cast<Handle>(h);
  if (f & slotf::kHuge) {
    const void* p = pool_->read_begin(handle, nullptr);
    std::memcpy(block, p, kBlockSize);
    pool_->read_end(handle, p);
    return {};
  }
  // A stateless decoder (lz4, lzo) needs no stream, so no stream lock: it decodes with a
  // local copy buffer on the stack.
  StreamPool& sp = streams_[s.prio()];
  alignas(64) unsigned char stack_copy[kBlockSize];
  Codec* codec = sp.stateless_decoder();
  Stream* st = codec ? nullptr : &sp.get();
  if (st) codec = st->codec.get();
  const void* p = pool_->read_begin(handle, st ? st->local_copy : stack_copy);
  auto r = codec->decompress(p, size, block, kBlockSize);
  pool_->read_end(handle, p);
  if (st) StreamPool::put(*st);
  return r;
}

Result<void> StoreImpl::do_read(std::uint64_t index, void* block) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_) return Errc::not_initialized;
  if (index >= nslots_) return Errc::out_of_range;
  return read_one(index, block);
}

// Protocol: docs/store.md#read, under the block's unit lock; a block of a stored unit
// through read_member_locked.
Result<void> StoreImpl::read_one(std::uint64_t index, void* block) noexcept {
  if (!summary_.may_hold(index)) {  // never written: zeros, without touching the table
    std::memset(block, 0, kBlockSize);
    return {};
  }
  Slot& s = slots_[index];
  Slot& u = unit_lock(index);
  u.lock();
  s.held_by(u);
  auto r = (u.get() & slotf::kUnit)
               ? read_member_locked(u, static_cast<unsigned>(index & (unit_blocks_ - 1)), block)
               : load_locked(s, block);
  touch_locked(u, s);
  u.unlock();
  if (!r) stats_.failed_reads.fetch_add(1, std::memory_order_relaxed);
  return r;
}

// Discard and write-zeroes: free every whole block in the range; partial ones are skipped.
// Protocol: docs/store.md#discard. Each block is cleared under its slot lock; the pool
// objects are freed in batches (HandleBatch) after their slots are unlocked. A block
// found unallocated without its lock is skipped: a write racing with the discard may
// then land before or after it, as with the lock.
Result<void> StoreImpl::do_discard(std::uint64_t offset, std::uint64_t len) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_) return Errc::not_initialized;
  if (offset > disksize_ || len > disksize_ - offset) return Errc::out_of_range;
  const std::uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
  const std::uint64_t end = (offset + len) / kBlockSize;
  if (first >= end) return {};
  // Only the blocks that may hold something: discarding a whole 1 TiB disk (mkfs does) costs
  // what is stored and leaves the rest of the slot table untouched. Pool objects are freed
  // in batches.
  HandleBatch batch(*pool_);
  if (unit_blocks_ > 1) {
    discard_units(first, end, batch);
  } else {
    discard_blocks(first, end, batch);
  }
  batch.flush();
  stats_.notify_free.fetch_add(end - first, std::memory_order_relaxed);  // the kernel counts each
  return {};
}

// Frees what the blocks of [first, end) hold, each under its unit lock: a stored unit the
// range covers whole goes at once (at its head, the first of its slots visited); of a unit
// covered in part (the caller sends those to the partial-write path, but a whole-unit
// write may store one after it looked), the blocks in the range stop being members.
void StoreImpl::discard_blocks(std::uint64_t first, std::uint64_t end,
                               HandleBatch& batch) noexcept {
  const std::uint64_t n = unit_blocks_;
  for_each_stored_slot(first, end, [&](std::uint64_t i, Slot& s) {
    init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    Slot& u = unit_lock(i);
    u.lock();
    s.held_by(u);
    if (u.get() & slotf::kUnit) {
      const std::uint64_t head = i & ~(n - 1);
      if (head >= first && head + n <= end) {
        free_unit_locked(u, &batch);
      } else if (s.get() & slotf::kMember) {
        drop_member_locked(u, static_cast<unsigned>(i - head), &batch);
      }
    } else if (s.allocated()) {
      free_slot_locked(s, &batch);
    }
    u.unlock();
    return true;
  });
}

void StoreImpl::do_slot_free_notify(std::uint64_t index) noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_ || index >= nslots_) return;
  stats_.notify_free.fetch_add(1, std::memory_order_relaxed);
  if (!summary_.may_hold(index)) return;
  Slot& s = slots_[index];
  Slot& u = unit_lock(index);
  if (!u.try_lock()) {
    stats_.miss_free.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  s.held_by(u);
  if (!(u.get() & slotf::kUnit)) {
    if (s.allocated()) free_slot_locked(s);
  } else if (s.get() & slotf::kMember) {  // the unit goes with its last member
    drop_member_locked(u, static_cast<unsigned>(index & (unit_blocks_ - 1)));
  }
  u.unlock();
}

bool StoreImpl::slot_test(std::uint64_t index, std::uint32_t mask,
                          std::uint64_t* handle) const noexcept {
  ReaderLock cfg(init_lock_);
  if (!slots_ || index >= nslots_ || !summary_.may_hold(index)) return false;
  Slot& s = slots_[index];
  Slot& u = unit_lock(index);
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get();
  // kStored asks whether the block holds data (a unit's member too); other masks test the
  // block's own flags (a unit's head holds the unit, not data of its own).
  const bool hit =
      mask == slotf::kStored ? slotf::block_holds(f) : (f & mask) != 0 && !(f & slotf::kUnit);
  if (hit && handle) *handle = s.handle.load(std::memory_order_relaxed);
  u.unlock();
  return hit;
}

}  // namespace uzram
