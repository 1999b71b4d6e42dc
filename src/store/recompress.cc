// store/recompress.cc - the `recompress` command: re-encode stored objects with the
// secondary algorithms (recomp_algorithm priorities 1..3) and keep the result only when it
// lands in a smaller zsmalloc size class. Guide: docs/store-postprocessing.md#recompress.
//
// Kernel 6.15-6.18 semantics: one pass tries, for each candidate, every configured
// priority above the object's current one (or just the requested one); a candidate that
// no algorithm improved is marked INCOMPRESSIBLE when the highest configured priority was
// among those tried, and is never selected again. The slot lock is held for the whole
// per-slot step (decompress, compress, swap objects), as in the kernel.
#include <algorithm>
#include <mutex>

#include "store/kv.h"
#include "store/pp_buckets.h"
#include "store/store_impl.h"
#include "util/check.h"

namespace uzram {
namespace {

constexpr unsigned kModeIdle = 1, kModeHuge = 2;

Result<void> fail(std::string* msg, std::error_code e, std::string text) {
  if (msg) *msg = std::move(text);
  return e;
}

struct RecompCommand {
  unsigned mode = 0;             // 0: every allocated slot
  std::uint64_t max_pages = 0;   // 0: no budget
  std::uint64_t threshold = 0;   // 0: none
  int prio = -1;                 // -1: every priority above the object's
};

}  // namespace

// Protocol: docs/store-postprocessing.md#recompress. Caller holds init_lock_ shared.
Result<void> StoreImpl::recompress_store(std::string_view value, std::string* msg) noexcept {
  // The highest configured priority bounds the pass (priorities may have holes).
  unsigned prio_max = 0;  // one past the highest active priority
  for (unsigned p = 1; p < kMaxPriorities; p++) {
    if (streams_[p].active()) prio_max = p + 1;
  }
  if (prio_max == 0) {
    return fail(msg, Errc::invalid_argument,
                "recompress: no recompression algorithm configured (write recomp_algorithm before disksize)");
  }

  RecompCommand cmd;
  std::string algo;
  int prio_arg = -1;
  for (const KeyValue& kv : split_kv(value)) {
    if (!kv.has_value) {
      return fail(msg, Errc::invalid_argument, "recompress: expected key=value, got '" + std::string(kv.key) + "'");
    }
    if (kv.key == "type") {
      if (kv.value == "idle") {
        cmd.mode = kModeIdle;
      } else if (kv.value == "huge") {
        cmd.mode = kModeHuge;
      } else if (kv.value == "huge_idle") {
        cmd.mode = kModeIdle | kModeHuge;
      } else {
        return fail(msg, Errc::invalid_argument,
                    "recompress: unknown type '" + std::string(kv.value) + "' (idle, huge or huge_idle)");
      }
    } else if (kv.key == "max_pages") {
      if (!parse_u64(kv.value, &cmd.max_pages)) {
        return fail(msg, Errc::invalid_argument, "recompress: bad max_pages '" + std::string(kv.value) + "'");
      }
    } else if (kv.key == "threshold") {
      if (!parse_u64(kv.value, &cmd.threshold)) {
        return fail(msg, Errc::invalid_argument, "recompress: bad threshold '" + std::string(kv.value) + "'");
      }
      if (cmd.threshold >= huge_class_size_) {
        return fail(msg, Errc::invalid_argument, "recompress: threshold must be below huge_class_size (" +
                    std::to_string(huge_class_size_) + ")");
      }
    } else if (kv.key == "algo") {
      algo = std::string(kv.value);
    } else if (kv.key == "priority") {
      if (!parse_int(kv.value, &prio_arg) || prio_arg < 1 || prio_arg >= static_cast<int>(kMaxPriorities)) {
        return fail(msg, Errc::invalid_argument, "recompress: priority must be 1..3");
      }
      if (!streams_[prio_arg].active()) {
        return fail(msg, Errc::invalid_argument,
                    "recompress: no recompression algorithm at priority " + std::to_string(prio_arg));
      }
    } else {
      return fail(msg, Errc::invalid_argument, "recompress: unknown parameter '" + std::string(kv.key) + "'");
    }
  }
  if (!algo.empty()) {
    int found = -1;
    for (unsigned p = 1; p < kMaxPriorities && found < 0; p++) {
      if (streams_[p].active() && comp_[p].name == algo) found = static_cast<int>(p);
    }
    if (found < 0) {
      return fail(msg, Errc::invalid_argument,
                  "recompress: '" + algo + "' is not a configured recompression algorithm");
    }
    if (prio_arg >= 0 && prio_arg != found) {
      return fail(msg, Errc::invalid_argument, "recompress: algo=" + algo + " is not at priority " +
                  std::to_string(prio_arg));
    }
    prio_arg = found;
  }
  unsigned prio_lo = 1;
  if (prio_arg >= 0) {
    prio_lo = static_cast<unsigned>(prio_arg);
    prio_max = prio_lo + 1;
  }
  // Whether a failed candidate can be marked INCOMPRESSIBLE: only when the highest
  // configured algorithm is in the range tried.
  unsigned highest = 0;
  for (unsigned p = 1; p < kMaxPriorities; p++) {
    if (streams_[p].active()) highest = p;
  }
  const bool tries_highest = prio_max == highest + 1;

  if (pp_in_progress_.exchange(true, std::memory_order_acquire)) {
    return fail(msg, Errc::busy, "recompress: another writeback or recompress is in progress");
  }
  struct PpDone {
    std::atomic<bool>& flag;
    ~PpDone() { flag.store(false, std::memory_order_release); }
  } pp_done{pp_in_progress_};

  const auto release = [this](std::uint64_t index) {
    Slot& s = slots_[index];
    s.lock();
    s.set(s.get() & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
  };

  // 1. Candidates: pool objects (not WB, SAME or INCOMPRESSIBLE) passing the type filter,
  // whose priority leaves a higher one to try.
  PpBuckets buckets;
  const bool scanned = for_each_stored_slot(0, nslots_, [&](std::uint64_t i, Slot& s) {
    s.lock();  // the peek is re-checked under the lock
    const std::uint32_t f = s.get();
    bool take = (f & slotf::kSizeMask) &&
                !(f & (slotf::kWb | slotf::kSame | slotf::kIncompressible | slotf::kPpSlot)) &&
                s.prio() + 1 < prio_max;
    if ((cmd.mode & kModeIdle) && !(f & slotf::kIdle)) take = false;
    if ((cmd.mode & kModeHuge) && !(f & slotf::kHuge)) take = false;
    if (take) s.set((f | slotf::kPpSlot) & ~slotf::kLock);
    s.unlock();
    if (take && !buckets.add(i, f & slotf::kSizeMask)) {
      release(i);
      return false;
    }
    return true;
  });
  if (!scanned) {
    for (std::uint64_t j; buckets.pop(&j);) release(j);
    return fail(msg, Errc::no_memory, "recompress: out of memory");
  }

  // 2. Largest objects first; the budget counts attempts, successful or not.
  alignas(64) unsigned char page[kBlockSize];
  std::uint64_t budget = cmd.max_pages;
  Result<void> result;
  for (std::uint64_t index; buckets.pop(&index);) {
    Slot& s = slots_[index];
    if (!result || (cmd.max_pages && budget == 0)) {  // stopped: just drain
      release(index);
      continue;
    }
    s.lock();
    const std::uint32_t f = s.get();
    const std::uint32_t old_size = f & slotf::kSizeMask;
    // Accessed or freed since the scan, or already small enough: leave it.
    if (!(f & slotf::kPpSlot) || old_size == 0 || (f & (slotf::kWb | slotf::kSame)) || old_size < cmd.threshold) {
      s.set(s.get() & ~(slotf::kPpSlot | slotf::kLock));
      s.unlock();
      continue;
    }
    if (auto r = load_locked(s, page); !r) {  // raw copy for a huge slot
      s.set(f & ~(slotf::kPpSlot | slotf::kLock));
      s.unlock();
      result = fail(msg, r.error(),
                    "recompress: cannot decompress block " + std::to_string(index));
      continue;
    }
    std::uint32_t flags = f & ~(slotf::kIdle | slotf::kPpSlot | slotf::kLock);  // touched: not idle
    if (cmd.max_pages) budget--;
    const unsigned old_class = pool_->lookup_class_index(old_size);
    const unsigned cur = s.prio();
    bool accepted = false;
    for (unsigned p = std::max(prio_lo, cur + 1); p < prio_max && result && !accepted; p++) {
      if (!streams_[p].active()) continue;
      Stream& st = streams_[p].get();
      auto clen = st.codec->compress(page, kBlockSize, st.buffer, sizeof st.buffer);
      if (!clen) {
        StreamPool::put(st);
        result = fail(msg, clen.error(),
                      "recompress: " + comp_[p].name + " failed on block " + std::to_string(index));
        break;
      }
      const std::size_t len = *clen;
      // The kernel's rule: a strictly smaller class for the raw lengths, below the
      // threshold if one is set. uzram also refuses len >= huge_class_size: such an object
      // would occupy a whole page again, with nothing saved.
      if (len >= huge_class_size_ || pool_->lookup_class_index(len) >= old_class ||
          (cmd.threshold && len >= cmd.threshold)) {
        StreamPool::put(st);
        continue;
      }
      auto h = pool_->alloc(len);  // the old object stays if this fails
      if (!h) {
        StreamPool::put(st);
        result = fail(msg, h.error(), "recompress: cannot allocate a pool object");
        break;
      }
      pool_->write(*h, st.buffer, len);
      StreamPool::put(st);
      free_slot_locked(s);  // old object; compr_data_size, huge_pages, pages_stored
      s.handle.store(static_cast<std::uint64_t>(*h), std::memory_order_relaxed);
      flags = static_cast<std::uint32_t>(len) | (p << slotf::kPrioShift);
      stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
      stats_.compr_data_size.fetch_add(len, std::memory_order_relaxed);
      accepted = true;
    }
    if (!accepted && result && tries_highest) flags |= slotf::kIncompressible;
    s.set(flags);
    s.unlock();
  }
  return result;
}

}  // namespace uzram
