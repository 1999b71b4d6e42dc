// store/writeback.cc - the `writeback` command: parse it, collect the candidates (PpPass),
// write their blocks to the backing device in batches (BlockWriter) and publish each slot
// as written back once its write is known durable. Guide and protocol:
// docs/store-postprocessing.md#writeback. The backing device's side is backing_dev.cc
// (attribute, reads of written-back blocks) and backing.cc (the device).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/block_writer.h"
#include "store/fail.h"
#include "store/kv.h"
#include "store/pp_pass.h"
#include "store/store_impl.h"
#include "util/errno_text.h"

namespace uzram {
namespace {

using Backing = StoreImpl::Backing;

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

// The writes of one pass, after its scan: up to kWbDepth requests in flight, largest
// objects first. Each request is filled from a candidate under its slot lock, written by
// the BlockWriter, made durable, and published (the slot becomes WB) if nothing touched
// the slot meanwhile; else its backing block is given back.
class WritebackRun {
 public:
  WritebackRun(StoreImpl& s, PpPass& pass, unsigned char* pages) noexcept
      : s_(s), b_(*s.backing_), pass_(pass), compressed_(s.compressed_writeback_), writer_(b_) {
    for (unsigned i = 0; i < kWbDepth; i++) {
      reqs_[i].page = pages + std::size_t{i} * kBlockSize;
      reqs_[i].next = free_reqs_;
      free_reqs_ = &reqs_[i];
    }
  }

  Result<void> run(std::string* msg) noexcept {
    for (;;) {
      while (stop_ == Errc::ok && free_reqs_ && submit_next()) {
      }
      if (in_flight_ == 0) break;
      finish(writer_.reap());
    }
    return report(msg);
  }

 private:
  bool submit_next() noexcept;
  void finish(WbReq* done) noexcept;
  void sync_buffered(WbReq* done) noexcept;
  bool fill(WbReq* r, std::uint64_t index) noexcept;
  void complete(WbReq* r) noexcept;
  Result<void> report(std::string* msg) const noexcept;

  // One page of writeback_limit: 1 charged, 0 no limit, -1 exhausted.
  int charge() noexcept {
    if (!s_.wb_limit_enable_.load(std::memory_order_relaxed)) return 0;
    std::uint64_t cur = s_.wb_limit_pages_.load(std::memory_order_relaxed);
    do {
      if (cur == 0) return -1;
    } while (!s_.wb_limit_pages_.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed));
    return 1;
  }
  void refund(WbReq* r) noexcept {
    if (r->charged) s_.wb_limit_pages_.fetch_add(1, std::memory_order_relaxed);
    r->charged = false;
  }

  StoreImpl& s_;
  Backing& b_;
  PpPass& pass_;
  const bool compressed_;  // compressed_writeback
  WbReq reqs_[kWbDepth];
  WbReq* free_reqs_ = nullptr;
  unsigned in_flight_ = 0;
  Errc stop_ = Errc::ok;      // fatal: limit exhausted, device full
  std::error_code last_err_;  // not fatal: a write or a read failed; the pass goes on
  int last_errno_ = 0;
  std::uint64_t failed_ = 0;
  BlockWriter writer_;  // last: its threads are joined before the requests go
};

// Takes the next candidate into a free request and queues its write. False when no
// candidate is left or the pass must stop (stop_).
bool WritebackRun::submit_next() noexcept {
  std::uint64_t index;
  if (!pass_.next(&index)) return false;
  WbReq* r = free_reqs_;
  const int c = charge();
  if (c < 0) {
    pass_.release(index);
    stop_ = Errc::io_error;
    return false;
  }
  r->charged = c > 0;
  if (!b_.alloc(&r->block)) {
    pass_.release(index);
    refund(r);
    stop_ = Errc::no_memory;
    return false;
  }
  if (!fill(r, index)) {  // r stays free
    b_.release(r->block);
    refund(r);
    return true;
  }
  free_reqs_ = r->next;
  writer_.queue(r);
  in_flight_++;
  return true;
}

// Publishes (or gives back) every request of a reaped batch; the requests become free.
void WritebackRun::finish(WbReq* done) noexcept {
  sync_buffered(done);
  for (WbReq* r = done; r;) {
    WbReq* next = r->next;
    complete(r);
    r->next = free_reqs_;
    free_reqs_ = r;
    in_flight_--;
    r = next;
  }
}

// Durable before published: a run written without O_DIRECT is only in the page cache,
// where a failed writeback would surface later, with the RAM copy gone. One fdatasync
// covers every buffered write of the batch; if it fails, none of them is trusted.
void WritebackRun::sync_buffered(WbReq* done) noexcept {
  bool need_sync = false;
  for (WbReq* r = done; r; r = r->next) need_sync |= r->err == 0 && r->buffered;
  if (!need_sync) return;
  if (const int e = backing_sync(b_); e != 0) {
    for (WbReq* r = done; r; r = r->next) {
      if (r->err == 0 && r->buffered) r->err = e;
    }
  }
}

// Reads slot `index` into r (under its lock). False: skip it (r stays free).
bool WritebackRun::fill(WbReq* r, std::uint64_t index) noexcept {
  Slot& s = s_.slots_[index];
  s.lock();
  const std::uint32_t f = s.get();
  const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
  if (!(f & slotf::kPpSlot) || !(f & slotf::kSizeMask) || (f & (slotf::kWb | slotf::kSame))) {
    s.unlock();  // accessed or freed since the scan
    return false;
  }
  const std::uint32_t size = f & slotf::kSizeMask;
  r->index = index;
  r->handle = h;
  r->flags = f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask);
  r->wb_handle = r->block;
  r->wb_flags = slotf::kWb;
  if (compressed_ && !(f & slotf::kHuge)) {  // the compressed bytes as they are
    const auto handle = static_cast<Handle>(h);
    const void* p = s_.pool_->read_begin(handle, r->page);
    if (p != r->page) std::memcpy(r->page, p, size);
    s_.pool_->read_end(handle, p);
    std::memset(r->page + size, 0, kBlockSize - size);
    r->wb_handle |= std::uint64_t{size} << kWbLenShift;
    r->wb_flags |= slotf::kWbCompressed | (f & slotf::kPrioMask);
  } else if (auto lr = s_.load_locked(s, r->page); !lr) {
    s.set(f & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
    last_err_ = lr.error();
    failed_++;
    return false;
  }
  s.unlock();
  return true;
}

// Publishes a completed write: the slot becomes WB if nothing touched it meanwhile.
void WritebackRun::complete(WbReq* r) noexcept {
  if (r->err == 0) s_.stats_.bd_writes.fetch_add(1, std::memory_order_relaxed);
  Slot& s = s_.slots_[r->index];
  s.lock();
  const std::uint32_t f = s.get();
  const bool unchanged = (f & slotf::kPpSlot) && !(f & (slotf::kWb | slotf::kSame)) &&
                         s.handle.load(std::memory_order_relaxed) == r->handle &&
                         (f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask)) == r->flags;
  if (r->err == 0 && unchanged) {
    s_.free_slot_locked(s);  // the pool object, compr_data_size, huge_pages, pages_stored
    s.handle.store(r->wb_handle, std::memory_order_relaxed);
    s.set(r->wb_flags);
    s_.stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
    s_.stats_.bd_count.fetch_add(1, std::memory_order_relaxed);
    s.unlock();
    r->charged = false;
    return;
  }
  if (f & slotf::kPpSlot) s.set(f & ~(slotf::kPpSlot | slotf::kLock));
  s.unlock();
  b_.release(r->block);
  if (r->err != 0) {  // the write (or its sync) failed: the RAM copy stays, budget back
    s_.stats_.wb_failed.fetch_add(1, std::memory_order_relaxed);
    refund(r);
    last_err_ = make_error_code(Errc::io_error);
    last_errno_ = r->err;
    failed_++;
  }
  r->charged = false;
}

Result<void> WritebackRun::report(std::string* msg) const noexcept {
  if (stop_ == Errc::io_error) {
    return fail(msg, stop_, "writeback: writeback_limit exhausted (writeback_limit_enable is 1)");
  }
  if (stop_ == Errc::no_memory) {
    return fail(msg, stop_,
                "writeback: backing device '" + s_.backing_path_ + "' is full (" +
                    std::to_string(b_.nblocks - 1) + " blocks)");
  }
  if (last_err_) {
    return fail(msg, last_err_,
                "writeback: " + std::to_string(failed_) + " block(s) not written back" +
                    (last_errno_ ? ": " + std::string(errno_text(last_errno_)) : std::string()));
  }
  return {};
}

struct FreeDeleter {
  void operator()(unsigned char* p) const noexcept { std::free(p); }
};

}  // namespace

// Needs the backing device, then the command (its ranges within the device).
Result<void> attr::parse_writeback(const StoreImpl& s, std::string_view text, AttrArg* out,
                                   std::string* msg) noexcept {
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
  const WbCommand& cmd = arg.writeback;
  PpPass pass(s, "writeback");
  if (auto r = pass.begin(msg); !r) return r;

  // 1. Candidates: allocated pool objects (not WB, not SAME) that pass the type filter.
  const auto want = [mode = cmd.mode](std::uint32_t f) { return pp_type_matches(mode, f); };
  if (cmd.ranges.empty()) {
    if (auto r = pass.scan(0, s.nslots_, want, msg); !r) return r;
  }
  for (const auto& [lo, hi] : cmd.ranges) {
    if (auto r = pass.scan(lo, hi + 1, want, msg); !r) return r;
  }
  if (pass.empty()) return {};

  // 2. Writes, largest objects first, kWbDepth in flight.
  std::unique_ptr<unsigned char, FreeDeleter> pages(
      static_cast<unsigned char*>(std::aligned_alloc(4096, kWbDepth * kBlockSize)));
  if (!pages) return fail(msg, Errc::no_memory, "writeback: out of memory");
  WritebackRun run(s, pass, pages.get());
  return run.run(msg);
}

}  // namespace uzram
