// store/recompress.cc - the `recompress` command: re-encode stored objects with the
// secondary algorithms (recomp_algorithm priorities 1..3) and keep the result only when it
// lands in a smaller zsmalloc size class. Guide: docs/store-postprocessing.md#recompress.
//
// Kernel 6.15-6.18 semantics: one pass tries, for each candidate, every configured
// priority above the object's current one (or just the requested one); a candidate that
// no algorithm improved is marked INCOMPRESSIBLE when the highest configured priority was
// among those tried, and is never selected again. Unlike the kernel, the slot lock is not
// held across the per-slot step: the object is copied out under it, decompressed and
// recompressed without it, and the result published under it only if the slot is unchanged.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "store/pp_run.h"
#include "store/store_impl.h"
#include "store/unit_pp.h"

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
Result<void> resolve_algo(const StoreImpl& s, const std::string& algo, int* prio, std::string* msg)
    ZS_REQUIRES_SHARED(s.init_lock_) {
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
  s.init_lock_.assert_held_shared();
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

// Scratch of one pass: the object as stored, and its decompressed page.
struct RecompScratch {
  alignas(64) unsigned char object[kBlockSize];
  alignas(64) unsigned char page[kBlockSize];
};

// The object's page: a huge object is the page; else it is decompressed with the
// algorithm of priority `prio` (no slot lock needed: the bytes are a private copy).
Result<void> decode(StoreImpl& st, unsigned prio, std::uint32_t size, bool huge,
                    RecompScratch& sc) {
  st.init_lock_.assert_held_shared();
  if (huge) {
    std::memcpy(sc.page, sc.object, kBlockSize);
    return {};
  }
  StreamPool& sp = st.streams_[prio];
  if (Codec* c = sp.stateless_decoder()) return c->decompress(sc.object, size, sc.page, kBlockSize);
  Stream& stream = sp.get();
  auto r = stream.codec->decompress(sc.object, size, sc.page, kBlockSize);
  StreamPool::put(stream);
  return r;
}

// A recompressed object, written and not yet published.
struct Recompressed {
  Handle handle{};
  std::uint32_t len = 0;
  unsigned prio = 0;
};

// Tries the priorities above `old_prio` on the decompressed page; the first result that
// lands in a smaller class than `old_size`'s is allocated and written (*out). Returns
// whether one was, or the error that stops the pass. No slot lock is held.
Result<bool> try_priorities(StoreImpl& st, std::uint64_t index, const RecompCommand& cmd,
                            std::uint32_t old_size, unsigned old_prio, const unsigned char* page,
                            Recompressed* out, std::string* msg) {
  st.init_lock_.assert_held_shared();
  const unsigned old_class = st.pool_->lookup_class_index(old_size);
  for (unsigned p = std::max(cmd.prio_lo, old_prio + 1); p < cmd.prio_max; p++) {
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
    *out = {*h, static_cast<std::uint32_t>(len), p};
    return true;
  }
  return false;
}

// Publishes the outcome of one candidate under its slot lock if the slot is as it was
// copied (PP_SLOT still set: nothing read, wrote, freed or discarded it since the scan, as
// every such access clears it; same handle): the new object replaces the old one, or, with
// none, the slot is marked INCOMPRESSIBLE when `incompressible`. Either way IDLE is cleared
// (the block was touched). A changed slot keeps its new contents and the new object is freed.
void publish(StoreImpl& st, Slot& s, std::uint64_t handle, const Recompressed* r,
             bool incompressible, PpDone* done) {
  st.init_lock_.assert_held_shared();
  Slot& u = st.unit_lock(static_cast<std::uint64_t>(&s - st.slots_));
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get() & ~slotf::kLock;
  if (!(f & slotf::kPpSlot) || s.handle.load(std::memory_order_relaxed) != handle) {
    u.unlock();
    if (r) st.pool_->free(r->handle);
    return;
  }
  if (!r) {
    s.set((f & ~(slotf::kIdle | slotf::kPpSlot)) | (incompressible ? slotf::kIncompressible : 0));
    u.unlock();
    return;
  }
  const std::uint32_t old_size = f & slotf::kSizeMask;
  st.free_slot_locked(s);  // old object; compr_data_size, huge_pages, pages_stored
  s.handle.store(static_cast<std::uint64_t>(r->handle), std::memory_order_relaxed);
  s.set(r->len | (r->prio << slotf::kPrioShift));
  u.unlock();
  st.stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
  st.stats_.compr_data_size.fetch_add(r->len, std::memory_order_relaxed);
  if (done) {
    done->pages++;
    done->bytes += old_size - r->len;
  }
}

// One candidate. Its slot lock is held only to copy the stored bytes out and to publish the
// result, never across decompression or compression: a recompression holds a block no
// longer than a write does. *budget counts attempts (max_pages). Returns the error that
// stops the pass, if any.
Result<void> recompress_one(StoreImpl& st, std::uint64_t index, const RecompCommand& cmd,
                            RecompScratch& sc, std::uint64_t* budget, PpDone* done,
                            std::string* msg) ZS_REQUIRES_SHARED(st.init_lock_) {
  Slot& s = st.slots_[index];
  Slot& u = st.unit_lock(index);
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get() & ~slotf::kLock;
  const std::uint32_t size = f & slotf::kSizeMask;
  // Accessed or freed since the scan, or already small enough, or a unit (it became one
  // since the peek: recompress_unit's): leave it.
  if (!(f & slotf::kPpSlot) || size == 0 || (f & (slotf::kWb | slotf::kSame | slotf::kUnit)) ||
      size < cmd.threshold) {
    s.set(f & ~slotf::kPpSlot);
    u.unlock();
    return {};
  }
  const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
  const auto handle = static_cast<Handle>(h);
  const void* p = st.pool_->read_begin(handle, sc.object);
  if (p != sc.object) std::memcpy(sc.object, p, size);
  st.pool_->read_end(handle, p);
  u.unlock();  // PP_SLOT stays: any access from now on clears it

  const unsigned prio = (f & slotf::kPrioMask) >> slotf::kPrioShift;
  const auto give_back = [&s, &u] {  // the pass stops: the slot stays as it is
    u.lock();
    s.held_by(u);
    s.set(s.get() & ~(slotf::kPpSlot | slotf::kLock));
    u.unlock();
  };
  if (auto r = decode(st, prio, size, f & slotf::kHuge, sc); !r) {
    give_back();
    return fail(msg, r.error(), "recompress: cannot decompress block " + std::to_string(index));
  }
  if (cmd.max_pages) (*budget)--;
  Recompressed out;
  auto accepted = try_priorities(st, index, cmd, size, prio, sc.page, &out, msg);
  if (!accepted) {
    give_back();
    return accepted.error();
  }
  publish(st, s, h, *accepted ? &out : nullptr, !*accepted && cmd.tries_highest, done);
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
  return run_recompress(s, arg.recompress, nullptr, msg);
}

Result<void> run_recompress(StoreImpl& s, const RecompCommand& cmd, PpDone* done,
                            std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();  // the attribute's caller, or the policy's pass
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
  std::unique_ptr<RecompScratch> sc(new (std::nothrow) RecompScratch);
  if (!sc) return fail(msg, Errc::no_memory, "recompress: out of memory");
  UnitScratch usc;  // a unit store's: units are recompressed whole (unit_recompress.cc)
  if (s.unit_blocks_ > 1 && !usc.init(s.unit_size_)) {
    return fail(msg, Errc::no_memory, "recompress: out of memory");
  }
  std::uint64_t budget = cmd.max_pages;
  for (std::uint64_t index; !(cmd.max_pages && budget == 0) && pass.next(&index);) {
    // A unit's head (a peek: each side re-checks under the unit lock).
    const bool unit =
        s.in_unit(index) && (s.slots_[index].flags.load(std::memory_order_relaxed) & slotf::kUnit);
    auto r = unit ? recompress_unit(s, index, cmd, usc, &budget, done, msg)
                  : recompress_one(s, index, cmd, *sc, &budget, done, msg);
    if (!r) return r;
  }
  return {};
}

}  // namespace uzram
