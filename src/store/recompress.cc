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

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "store/store_impl.h"

namespace uzram {
namespace {

// The highest active priority + 1 (0 when no recompression algorithm is configured;
// priorities may have holes).
unsigned priorities_end(const StoreImpl& s) noexcept ZS_REQUIRES_SHARED(s.init_lock_) {
  unsigned end = 0;
  for (unsigned p = 1; p < kMaxPriorities; p++) {
    if (s.streams_[p].active()) end = p + 1;
  }
  return end;
}

Result<void> parse_type(std::string_view v, RecompCommand* cmd, std::string* msg) {
  if (v == "idle") {
    cmd->mode = kPpIdle;
  } else if (v == "huge") {
    cmd->mode = kPpHuge;
  } else if (v == "huge_idle") {
    cmd->mode = kPpIdle | kPpHuge;
  } else {
    return fail(msg, Errc::invalid_argument,
                "recompress: unknown type '" + std::string(v) + "' (idle, huge or huge_idle)");
  }
  return {};
}

// One key=value of the command; algo= is kept in *algo, priority= in *prio.
Result<void> parse_param(const StoreImpl& s, const KeyValue& kv, RecompCommand* cmd,
                         std::string* algo, int* prio, std::string* msg)
    ZS_REQUIRES_SHARED(s.init_lock_) {
  const std::string v(kv.value);
  if (kv.key == "type") return parse_type(kv.value, cmd, msg);
  if (kv.key == "max_pages") {
    if (parse_u64(kv.value, &cmd->max_pages)) return {};
    return fail(msg, Errc::invalid_argument, "recompress: bad max_pages '" + v + "'");
  }
  if (kv.key == "threshold") {
    if (!parse_u64(kv.value, &cmd->threshold)) {
      return fail(msg, Errc::invalid_argument, "recompress: bad threshold '" + v + "'");
    }
    if (cmd->threshold >= s.huge_class_size_) {
      return fail(msg, Errc::invalid_argument,
                  "recompress: threshold must be below huge_class_size (" +
                      std::to_string(s.huge_class_size_) + ")");
    }
    return {};
  }
  if (kv.key == "algo") {
    *algo = v;
    return {};
  }
  if (kv.key == "priority") {
    if (!parse_int(kv.value, prio) || *prio < 1 || *prio >= static_cast<int>(kMaxPriorities)) {
      return fail(msg, Errc::invalid_argument, "recompress: priority must be 1..3");
    }
    if (!s.streams_[*prio].active()) {
      return fail(msg, Errc::invalid_argument,
                  "recompress: no recompression algorithm at priority " + std::to_string(*prio));
    }
    return {};
  }
  return fail(msg, Errc::invalid_argument,
              "recompress: unknown parameter '" + std::string(kv.key) + "'");
}

// algo=NAME: the priority it is configured at, which must agree with priority= if given.
Result<void> resolve_algo(const StoreImpl& s, const std::string& algo, int* prio,
                          std::string* msg) ZS_REQUIRES_SHARED(s.init_lock_) {
  int found = -1;
  for (unsigned p = 1; p < kMaxPriorities && found < 0; p++) {
    if (s.streams_[p].active() && s.comp_[p].name == algo) found = static_cast<int>(p);
  }
  if (found < 0) {
    return fail(msg, Errc::invalid_argument,
                "recompress: '" + algo + "' is not a configured recompression algorithm");
  }
  if (*prio >= 0 && *prio != found) {
    return fail(msg, Errc::invalid_argument,
                "recompress: algo=" + algo + " is not at priority " + std::to_string(*prio));
  }
  *prio = found;
  return {};
}

Result<void> parse_command(const StoreImpl& s, std::string_view value, RecompCommand* cmd,
                           std::string* msg) ZS_REQUIRES_SHARED(s.init_lock_) {
  cmd->prio_max = priorities_end(s);
  if (cmd->prio_max == 0) {
    return fail(msg, Errc::invalid_argument,
                "recompress: no recompression algorithm configured (write recomp_algorithm "
                "before disksize)");
  }
  const unsigned highest = cmd->prio_max - 1;
  std::string algo;
  int prio = -1;
  for (const KeyValue& kv : split_kv(value)) {
    if (!kv.has_value) {
      return fail(msg, Errc::invalid_argument,
                  "recompress: expected key=value, got '" + std::string(kv.key) + "'");
    }
    if (auto r = parse_param(s, kv, cmd, &algo, &prio, msg); !r) return r;
  }
  if (!algo.empty()) {
    if (auto r = resolve_algo(s, algo, &prio, msg); !r) return r;
  }
  if (prio >= 0) {
    cmd->prio_lo = static_cast<unsigned>(prio);
    cmd->prio_max = cmd->prio_lo + 1;
  }
  // A failed candidate is marked INCOMPRESSIBLE only when the highest configured
  // algorithm is in the range tried.
  cmd->tries_highest = cmd->prio_max == highest + 1;
  return {};
}

// Tries the priorities above the object's on the decompressed `page`; on the first that
// lands in a smaller class, replaces the object and sets *flags to its size and priority.
// Returns whether one did, or the error that stops the pass. Caller holds the slot lock.
Result<bool> try_priorities_locked(StoreImpl& st, Slot& s, std::uint64_t index,
                                   const RecompCommand& cmd, const unsigned char* page,
                                   std::uint32_t* flags, std::string* msg)
    ZS_REQUIRES(s) ZS_REQUIRES_SHARED(st.init_lock_) {
  const unsigned old_class = st.pool_->lookup_class_index(s.size());
  for (unsigned p = std::max(cmd.prio_lo, s.prio() + 1); p < cmd.prio_max; p++) {
    if (!st.streams_[p].active()) continue;
    Stream& stream = st.streams_[p].get();
    auto clen = stream.codec->compress(page, kBlockSize, stream.buffer, sizeof stream.buffer);
    if (!clen) {
      StreamPool::put(stream);
      return fail(msg, clen.error(),
                  "recompress: " + st.comp_[p].name + " failed on block " + std::to_string(index))
          .error();
    }
    const std::size_t len = *clen;
    // The kernel's rule: a strictly smaller class for the raw lengths, below the threshold
    // if one is set. uzram also refuses len >= huge_class_size: such an object would
    // occupy a whole page again, with nothing saved.
    if (len >= st.huge_class_size_ || st.pool_->lookup_class_index(len) >= old_class ||
        (cmd.threshold && len >= cmd.threshold)) {
      StreamPool::put(stream);
      continue;
    }
    auto h = st.pool_->alloc(len);  // the old object stays if this fails
    if (!h) {
      StreamPool::put(stream);
      return fail(msg, h.error(), "recompress: cannot allocate a pool object").error();
    }
    st.pool_->write(*h, stream.buffer, len);
    StreamPool::put(stream);
    st.free_slot_locked(s);  // old object; compr_data_size, huge_pages, pages_stored
    s.handle.store(static_cast<std::uint64_t>(*h), std::memory_order_relaxed);
    *flags = static_cast<std::uint32_t>(len) | (p << slotf::kPrioShift);
    st.stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
    st.stats_.compr_data_size.fetch_add(len, std::memory_order_relaxed);
    return true;
  }
  return false;
}

// One candidate: re-checked under its slot lock, decompressed, tried at the priorities
// above its own. `page` is scratch; *budget counts attempts (max_pages). Returns the error
// that stops the pass, if any.
Result<void> recompress_one(StoreImpl& st, std::uint64_t index, const RecompCommand& cmd,
                            unsigned char* page, std::uint64_t* budget, std::string* msg)
    ZS_REQUIRES_SHARED(st.init_lock_) {
  Slot& s = st.slots_[index];
  s.lock();
  const std::uint32_t f = s.get();
  const std::uint32_t old_size = f & slotf::kSizeMask;
  // Accessed or freed since the scan, or already small enough: leave it.
  if (!(f & slotf::kPpSlot) || old_size == 0 || (f & (slotf::kWb | slotf::kSame)) ||
      old_size < cmd.threshold) {
    s.set(s.get() & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
    return {};
  }
  if (auto r = st.load_locked(s, page); !r) {  // raw copy for a huge slot
    s.set(f & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
    return fail(msg, r.error(), "recompress: cannot decompress block " + std::to_string(index));
  }
  std::uint32_t flags = f & ~(slotf::kIdle | slotf::kPpSlot | slotf::kLock);  // touched: not idle
  if (cmd.max_pages) (*budget)--;
  auto accepted = try_priorities_locked(st, s, index, cmd, page, &flags, msg);
  if (accepted && !*accepted && cmd.tries_highest) flags |= slotf::kIncompressible;
  s.set(flags);
  s.unlock();
  if (!accepted) return accepted.error();
  return {};
}

}  // namespace

// Needs a recompression algorithm, then the command, resolved against the configured ones.
Result<void> attr::parse_recompress(const StoreImpl& s, std::string_view text, AttrArg* out,
                                    std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();  // called through the attribute table's pointer
  RecompCommand cmd;
  if (auto r = parse_command(s, text, &cmd, msg); !r) return r;
  out->recompress = cmd;
  return {};
}

// Protocol: docs/store-postprocessing.md#recompress. Caller holds init_lock_ shared.
Result<void> attr::write_recompress(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();  // called through the attribute table's pointer
  const RecompCommand& cmd = arg.recompress;
  PpPass pass(s, "recompress");
  if (auto r = pass.begin(msg); !r) return r;

  // 1. Candidates: pool objects (not WB, SAME or INCOMPRESSIBLE) passing the type filter,
  // whose priority leaves a higher one to try.
  const auto want = [&cmd](std::uint32_t f) {
    const unsigned prio = (f & slotf::kPrioMask) >> slotf::kPrioShift;
    return !(f & slotf::kIncompressible) && prio + 1 < cmd.prio_max && pp_type_matches(cmd.mode, f);
  };
  if (auto r = pass.scan(0, s.nslots_, want, msg); !r) return r;

  // 2. Largest objects first; the budget counts attempts, successful or not. A pass that
  // stops leaves the rest to PpPass, which releases them.
  alignas(64) unsigned char page[kBlockSize];
  std::uint64_t budget = cmd.max_pages;
  for (std::uint64_t index; !(cmd.max_pages && budget == 0) && pass.next(&index);) {
    if (auto r = recompress_one(s, index, cmd, page, &budget, msg); !r) return r;
  }
  return {};
}

}  // namespace uzram
