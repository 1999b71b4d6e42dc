// store/policy_pressure.cc - the policy's memory reaction and the writes that wait for it
// (policy.h). Guide: docs/store-postprocessing.md#memory-reaction; the locks:
// docs/locking.md#policy.
//
// The reaction (the worker, init_lock_ shared): while the pool is above the low watermark,
// find the coldest blocks that hold what must go (an age histogram of the pool objects,
// from relaxed peeks: no lock), mark them idle (`idle AGE`), recompress them if asked, write
// them back (`writeback type=idle` capped at their count), compact the pool, and tell the
// waiting writes. A step that moves nothing ends it; if the pool is then still over
// mem_limit, the reaction is "hopeless" for a second: writes at mem_limit fail at once.
#include <algorithm>
#include <bit>
#include <chrono>
#include <mutex>

#include "store/pp_run.h"
#include "store/store_impl.h"
#include "store/unit.h"

namespace uzram {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t steady_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

constexpr unsigned kMaxSteps = 16;          // per reaction; the worker is kicked again after
constexpr std::int64_t kHopelessMs = 1000;  // how long a failed reaction's verdict holds
constexpr auto kPoll = std::chrono::milliseconds(20);  // a waiting write re-checks this often

}  // namespace

bool Policy::hopeless_now() const noexcept {
  const std::int64_t until = hopeless_until_ms_.load(std::memory_order_relaxed);
  return until != 0 && steady_ms() < until;
}

// Caller holds init_lock_ shared (the pool exists).
bool Policy::has_room() const noexcept {
  s_.init_lock_.assert_held_shared();
  const std::uint64_t limit = s_.mem_limit_pages_.load(std::memory_order_relaxed);
  return limit == 0 || s_.pool_->total_pages() <= limit;
}

void Policy::over_high() noexcept {
  if (pressure_.load(std::memory_order_relaxed) || hopeless_now()) return;
  if (!pressure_.exchange(true, std::memory_order_acq_rel)) {
    worker_.kick_after(std::chrono::milliseconds(0));  // never runs the job on this thread
  }
}

bool Policy::wait_for_room() noexcept {
  might_sleep();
  const std::uint64_t wait = wait_ms_.load(std::memory_order_relaxed);
  if (wait == 0 || hopeless_now()) {
    c_.limit_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  c_.waited.fetch_add(1, std::memory_order_relaxed);
  const auto t0 = SteadyClock::now();
  const auto deadline = t0 + std::chrono::milliseconds(wait);
  MutexLock l(room_mu_);
  const std::uint64_t want = started_ + 1;  // a reaction that sees this write's object
  l.unlock();
  pressure_.store(true, std::memory_order_release);  // pairs: the worker's exchange
  worker_.kick_after(std::chrono::milliseconds(0));
  l.lock();
  bool ok = false;
  for (;;) {
    if (has_room()) {
      ok = true;
      break;
    }
    if ((finished_ >= want && last_hopeless_) || wait_ms_.load(std::memory_order_relaxed) == 0) {
      break;  // the reaction found no room to make, or the policy was switched off
    }
    const auto now = SteadyClock::now();
    if (now >= deadline) break;
    // Woken by the reaction's steps; the poll also sees room made by anything else (a
    // discard, a manual writeback) and a raised mem_limit.
    (void)room_cv_.wait_until(room_mu_, std::min(deadline, now + kPoll));
  }
  l.unlock();
  const auto waited =
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0);
  c_.wait_us.fetch_add(static_cast<std::uint64_t>(waited.count()), std::memory_order_relaxed);
  if (!ok) c_.limit_failed.fetch_add(1, std::memory_order_relaxed);
  return ok;
}

// Caller: the worker, holding init_lock_ shared on an initialised store.
void Policy::react(const PolicyParams& p) noexcept {
  s_.init_lock_.assert_held_shared();
  std::uint64_t gen;
  {
    MutexLock g(room_mu_);
    gen = ++started_;
  }
  c_.triggers.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t limit = s_.mem_limit_pages_.load(std::memory_order_relaxed);
  const std::uint64_t low = limit * p.spec.low / 100;
  // A step moves at least the band between the watermarks: each step scans the slot table
  // (three times), so it must move enough to pay for that while writes keep filling the pool.
  const std::uint64_t band = limit * p.spec.high / 100 - low;
  const std::uint64_t before = s_.pool_->total_pages();
  Step total;
  bool stuck = false;
  unsigned steps = 0;
  while (limit && !paused_.load() && steps < kMaxSteps) {
    const std::uint64_t pages = s_.pool_->total_pages();
    if (pages <= low) break;
    steps++;
    const Step st = free_coldest(p, std::max(pages - low, band) * kBlockSize, low);
    total.blocks += st.blocks;
    total.busy |= st.busy;
    if (st.blocks) s_.pool_->compact();
    room_cv_.notify_all();  // the waiting writes re-check
    if (st.blocks == 0) {
      stuck = !st.busy;
      break;
    }
  }
  const std::uint64_t after = s_.pool_->total_pages();
  const bool hopeless = stuck && after > limit;
  if (hopeless) hopeless_until_ms_.store(steady_ms() + kHopelessMs, std::memory_order_relaxed);
  {
    MutexLock g(room_mu_);
    finished_ = gen;
    last_hopeless_ = hopeless;
  }
  room_cv_.notify_all();
  // Not done yet (steps ran out, or another pass held the guard): come back.
  if (!hopeless && limit && after > high_pages()) {
    pressure_.store(true, std::memory_order_release);
    worker_.kick_after(std::chrono::milliseconds(total.busy ? 20 : 0));
  }
  log("policy: memory reaction: pool %llu -> %llu pages (mem_limit %llu, low %llu): %llu blocks "
      "moved in %u steps%s",
      static_cast<unsigned long long>(before), static_cast<unsigned long long>(after),
      static_cast<unsigned long long>(limit), static_cast<unsigned long long>(low),
      static_cast<unsigned long long>(total.blocks), steps,
      hopeless ? "; no more room can be made: writes at mem_limit fail" : "");
}

// One step: the coldest blocks holding `need` bytes, recompressed (if asked) then written
// back (if there is a backing device); stops early once the pool is down to `low` pages.
Policy::Step Policy::free_coldest(const PolicyParams& p, std::uint64_t need,
                                  std::uint64_t low) noexcept {
  s_.init_lock_.assert_held_shared();
  AgeHistogram hist;
  const std::uint32_t now = s_.now_seconds();
  const unsigned n = s_.unit_blocks_;
  s_.for_each_stored_slot(0, s_.nslots_, [&](std::uint64_t, Slot& slot) {
    // A peek without the slot lock: an estimate (the passes re-check under the lock).
    const std::uint32_t f = slot.flags.load(std::memory_order_relaxed);
    const std::uint32_t size = f & slotf::kSizeMask;
    if (size && !(f & (slotf::kWb | slotf::kSame | slotf::kPpSlot))) {
      const std::uint32_t t = slot.ac_time.load(std::memory_order_relaxed);
      // A unit's head: its members are the blocks a writeback of it moves (a peek too).
      const int blocks = f & slotf::kUnit ? std::popcount(unit::members(&slot, n)) : 1;
      hist.add(now >= t ? now - t : 0, size, static_cast<std::uint32_t>(std::max(blocks, 1)));
    }
    return true;
  });
  const AgeHistogram::Cut cut = hist.cutoff(need);
  Step st;
  if (cut.blocks == 0) return st;
  if (p.spec.pressure_recompress && recompression_configured()) {
    mark_idle(s_, cut.age);
    PpDone done;
    const auto r = pass("recompress", "type=idle", cut.blocks, &done);
    st.busy |= !r && r.error() == Errc::busy;
    st.blocks += done.pages;
    c_.recompressed.fetch_add(done.pages, std::memory_order_relaxed);
    c_.recomp_saved.fetch_add(done.bytes, std::memory_order_relaxed);
    if (done.pages) {
      s_.pool_->compact();
      if (s_.pool_->total_pages() <= low) return st;
    }
  }
  if (p.spec.pressure_writeback && s_.backing_ && !paused_.load()) {
    mark_idle(s_, cut.age);  // again: recompression cleared IDLE on what it touched
    PpDone done;
    const auto r = pass("writeback", "type=idle", cut.blocks, &done);
    st.busy |= !r && r.error() == Errc::busy;
    st.blocks += done.pages;
    c_.wb_pressure.fetch_add(done.pages, std::memory_order_relaxed);
    c_.wb_bytes.fetch_add(done.bytes, std::memory_order_relaxed);
    MutexLock g(mu_);
    day_.add(now, done.pages);
  }
  return st;
}

}  // namespace uzram
