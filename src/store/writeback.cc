// store/writeback.cc - the `writeback` command: parse it, collect the candidates (PpPass),
// write their blocks to the backing tier in batches (WbRun, BlockWriter) and publish each
// slot as written back once its write is known durable. Guide and protocol:
// docs/store-postprocessing.md#writeback. The backing tier's side is backing_dev.cc
// (attribute, reads of written-back blocks), backing_file.cc and backing_nbd.cc (the
// tiers) and backing_alloc.cc (its space).
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "store/pp_run.h"
#include "store/store_impl.h"
#include "store/wb_run.h"
#include "store/writeback_run.h"

namespace uzram {
namespace {

int parse_mode(std::string_view w) noexcept {
  if (w == "idle") return kPpIdle;
  if (w == "huge") return kPpHuge;
  if (w == "huge_idle") return kPpIdle | kPpHuge;
  if (w == "incompressible") return kPpIncompressible;
  return -1;
}

Result<void> set_mode(std::string_view w, WbCommand* cmd, std::string* msg) {
  const int m = parse_mode(w);
  if (m < 0) {
    return fail(msg, Errc::invalid_argument,
                "writeback: unknown type '" + std::string(w) +
                    "' (idle, huge, huge_idle or incompressible)");
  }
  if (cmd->has_mode) {
    return fail(msg, Errc::invalid_argument, "writeback: more than one type given");
  }
  cmd->mode = static_cast<unsigned>(m);
  cmd->has_mode = true;
  return {};
}

// page_index=N or page_indexes=LO-HI, within a device of nslots blocks.
Result<void> parse_range(const KeyValue& kv, std::uint64_t nslots, std::uint64_t* lo,
                         std::uint64_t* hi, std::string* msg) {
  const std::string v(kv.value);
  if (kv.key == "page_index") {
    if (!parse_u64(kv.value, lo)) {
      return fail(msg, Errc::invalid_argument, "writeback: bad page_index '" + v + "'");
    }
    *hi = *lo;
  } else if (kv.key == "page_indexes") {
    const std::size_t dash = kv.value.find('-');
    if (dash == std::string_view::npos || !parse_u64(kv.value.substr(0, dash), lo) ||
        !parse_u64(kv.value.substr(dash + 1), hi)) {
      return fail(msg, Errc::invalid_argument,
                  "writeback: bad page_indexes '" + v + "' (expected LO-HI)");
    }
    if (*lo > *hi) {
      return fail(msg, Errc::out_of_range, "writeback: page_indexes " + v + ": LO > HI");
    }
  } else {
    return fail(msg, Errc::invalid_argument,
                "writeback: unknown parameter '" + std::string(kv.key) + "'");
  }
  if (*hi >= nslots) {
    return fail(msg, Errc::out_of_range,
                "writeback: " + std::string(kv.key) + "=" + v + " is beyond the device (" +
                    std::to_string(nslots) + " blocks)");
  }
  return {};
}

Result<void> parse_command(std::string_view value, std::uint64_t nslots, WbCommand* cmd,
                           std::string* msg) {
  const auto kvs = split_kv(value);
  if (kvs.empty()) {
    return fail(msg, Errc::invalid_argument,
                "writeback: expects type=idle|huge|huge_idle|incompressible, page_index=N or "
                "page_indexes=LO-HI");
  }
  for (const KeyValue& kv : kvs) {
    if (!kv.has_value || kv.key == "type") {  // bare words: the legacy syntax
      if (auto r = set_mode(kv.has_value ? kv.value : kv.key, cmd, msg); !r) return r;
      continue;
    }
    std::uint64_t lo = 0, hi = 0;
    if (auto r = parse_range(kv, nslots, &lo, &hi, msg); !r) return r;
    try {
      cmd->ranges.emplace_back(lo, hi);
    } catch (...) {
      return fail(msg, Errc::no_memory, "writeback: out of memory");
    }
  }
  return {};
}

}  // namespace

// Space first (it may wait for trims: no slot lock then), sized by a relaxed peek; under
// the lock, PP_SLOT still set means nothing touched the slot since the scan, so the size
// is the one peeked.
WbRun::Place WritebackRun::place(WbBatch* b, std::uint64_t index) noexcept {
  s_.init_lock_.assert_held_shared();
  Slot& s = s_.slots_[index];
  Slot& u = s_.unit_lock(index);
  const std::uint32_t peek = s.flags.load(std::memory_order_relaxed);
  if (s_.in_unit(index) && (peek & slotf::kUnit)) return place_unit(b, index);
  if (!candidate(peek)) return Place::skipped;  // accessed or freed since the scan
  const std::uint32_t size = peek & slotf::kSizeMask;
  const bool raw = !compressed_ || (peek & slotf::kHuge);
  std::uint64_t off;
  WbAddr a;
  if (const Place p = reserve(b, raw ? kBlockSize : size, raw, &off, &a); p != Place::placed) {
    return p;
  }
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get();
  const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
  if (!candidate(f)) {
    u.unlock();
    return Place::skipped;
  }
  unsigned char* dst = b->pages + off;
  if (raw && !(f & slotf::kHuge)) {  // the decompressed page
    if (auto lr = s_.load_locked(s, dst); !lr) {
      s.set(f & ~(slotf::kPpSlot | slotf::kLock));
      u.unlock();
      note_error(lr.error());
      return Place::skipped;
    }
  } else {  // the stored bytes as they are: a huge page, or the compressed object
    const auto handle = static_cast<Handle>(h);
    const void* p = s_.pool_->read_begin(handle, dst);
    if (p != dst) std::memcpy(dst, p, size);
    s_.pool_->read_end(handle, p);
  }
  WbObj o;
  o.index = index;
  o.handle = h;
  o.flags = f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask);
  o.wb_handle = wb_encode(a);
  o.wb_flags = slotf::kWb | (raw ? 0 : slotf::kWbCompressed | (f & slotf::kPrioMask));
  u.unlock();
  commit(b, off, raw ? kBlockSize : size, o);
  placed_++;
  return Place::placed;
}

// The slot becomes WB if nothing touched it since it was read.
void WritebackRun::publish(const WbObj& o, bool ok) noexcept {
  s_.init_lock_.assert_held_shared();
  if (o.flags & slotf::kMember) {  // a unit's member: the unit goes with its last one
    pending_[npending_++] = o;
    if (o.flags & slotf::kUnit) publish_unit(ok);
    return;
  }
  Slot& s = s_.slots_[o.index];
  Slot& u = s_.unit_lock(o.index);
  u.lock();
  s.held_by(u);
  const std::uint32_t f = s.get();
  const bool unchanged = (f & slotf::kPpSlot) && !(f & (slotf::kWb | slotf::kSame)) &&
                         s.handle.load(std::memory_order_relaxed) == o.handle &&
                         (f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask)) == o.flags;
  if (ok && unchanged) {
    s_.free_slot_locked(s);  // the pool object, compr_data_size, huge_pages, pages_stored
    s.handle.store(o.wb_handle, std::memory_order_relaxed);
    s.set(o.wb_flags);
    b_.alloc.add_live(wb_decode(o.wb_handle));  // under the slot lock: before any free
    s_.stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
    s_.stats_.bd_count.fetch_add(1, std::memory_order_relaxed);
    if (done_) {
      done_->pages++;
      done_->bytes += o.flags & slotf::kSizeMask;
    }
  } else if (f & slotf::kPpSlot) {
    s.set(f & ~(slotf::kPpSlot | slotf::kLock));
  }
  u.unlock();
}

// Needs the backing device, then the command (its ranges within the device).
Result<void> attr::parse_writeback(const StoreImpl& s, std::string_view text, AttrArg* out,
                                   std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();  // called through the attribute table's pointer
  if (!s.backing_) {
    return fail(msg, Errc::not_supported,
                "writeback: no backing device (write backing_dev before disksize)");
  }
  WbCommand cmd;
  if (auto r = parse_command(text, s.nslots_, &cmd, msg); !r) return r;
  out->writeback = std::move(cmd);
  return {};
}

// Protocol: docs/store-postprocessing.md#writeback. Caller holds init_lock_ shared.
Result<void> attr::write_writeback(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  return run_writeback(s, arg.writeback, nullptr, msg);
}

Result<void> run_writeback(StoreImpl& s, const WbCommand& cmd, PpDone* done,
                           std::string* msg) noexcept {
  s.init_lock_.assert_held_shared();  // the attribute's caller, or the policy's pass
  PpPass pass(s, "writeback");
  if (auto r = pass.begin(msg); !r) return r;

  // 1. Candidates: allocated pool objects (not WB, not SAME) that pass the type filter. A
  // unit's head by its flags (the unit is idle, huge, incompressible); a range that holds
  // any block of a stored unit selects the unit (the first unit's head may lie before it).
  const auto want = [mode = cmd.mode](std::uint32_t f) { return pp_type_matches(mode, f); };
  const auto want_unit = [mode = cmd.mode](std::uint32_t f) {
    return (f & slotf::kUnit) && pp_type_matches(mode, f);
  };
  if (cmd.ranges.empty()) {
    if (auto r = pass.scan(0, s.nslots_, want, msg); !r) return r;
  }
  for (const auto& [lo, hi] : cmd.ranges) {
    const std::uint64_t head = static_cast<std::uint64_t>(&s.unit_lock(lo) - s.slots_);
    if (head < lo && s.in_unit(lo)) {
      if (auto r = pass.scan(head, head + 1, want_unit, msg); !r) return r;
    }
    if (auto r = pass.scan(lo, hi + 1, want, msg); !r) return r;
  }
  if (pass.empty()) return {};

  // 2. Writes, largest objects first, in batches of writeback_batch_size pages.
  WritebackRun run(s, pass, cmd.max_pages, done);
  if (auto r = run.init_units(msg); !r) return r;
  return run.run(msg);
}

}  // namespace uzram
