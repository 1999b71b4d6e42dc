// store/policy_round.cc - the policy's time-driven round (policy.h): mark idle by the
// ChromeOS idle age, recompress if asked, then the writeback passes of `order` within the
// round's allowance and the day's budget. Guide: docs/store-postprocessing.md#rounds.
#include <mutex>
#include <string>

#include "store/backing.h"
#include "store/pp_pass.h"
#include "store/pp_run.h"
#include "store/store_impl.h"

namespace uzram {
namespace {

// Free blocks on the backing device. Caller holds init_lock_ shared; the device is
// initialised and has one.
std::uint64_t backing_free(StoreImpl::Backing& b) noexcept {
  // Relaxed snapshots (BackingAlloc's statistics): a round's budget, not an allocation.
  const std::uint64_t n = b.alloc.nblocks(), used = b.alloc.used();
  return n > used + 1 ? n - 1 - used : 0;
}

const char* recompress_type(unsigned mode) noexcept {
  switch (mode) {
    case kPpIdle: return "type=idle";
    case kPpHuge: return "type=huge";
    case kPpIdle | kPpHuge: return "type=huge_idle";
    default: return "";
  }
}

}  // namespace

// Caller: the worker, holding init_lock_ shared on an initialised store; `now` is the
// store's clock when the round was found due.
void Policy::round(const PolicyParams& p, std::uint64_t now) noexcept {
  c_.rounds.fetch_add(1, std::memory_order_relaxed);
  const double mem = memory_utilisation();
  const std::uint64_t age = policy_idle_age(p.spec.idle_min, p.spec.idle_max, mem);
  c_.idle_age.store(age, std::memory_order_relaxed);
  const std::uint64_t idle = mark_idle(s_, age);
  c_.idle_marked.fetch_add(idle, std::memory_order_relaxed);

  PpDone recomp;
  if (p.spec.recompress && recompression_configured() && !paused_.load()) {
    (void)pass("recompress", recompress_type(p.spec.recompress_mode), p.round_max_pages, &recomp);
    c_.recompressed.fetch_add(recomp.pages, std::memory_order_relaxed);
    c_.recomp_saved.fetch_add(recomp.bytes, std::memory_order_relaxed);
    // Recompression clears IDLE on what it touched; the ages have not changed.
    if (recomp.pages) mark_idle(s_, age);
  }
  const std::uint64_t written = round_writeback(p, now);
  {
    MutexLock g(mu_);
    clock_.has_round = true;
    clock_.last_start = now;
    clock_.last_end = s_.now_seconds();
  }
  log("policy: round %llu: memory %.0f%%, idle age %llus, %llu idle; recompressed %llu "
      "(%llu bytes saved); wrote back %llu",
      static_cast<unsigned long long>(c_.rounds.load(std::memory_order_relaxed)), mem * 100,
      static_cast<unsigned long long>(age), static_cast<unsigned long long>(idle),
      static_cast<unsigned long long>(recomp.pages), static_cast<unsigned long long>(recomp.bytes),
      static_cast<unsigned long long>(written));
}

// The writeback passes of a round, in `order`, within its allowance; returns the blocks
// written back.
std::uint64_t Policy::round_writeback(const PolicyParams& p, std::uint64_t now) noexcept {
  s_.init_lock_.assert_held_shared();
  if (p.spec.norder == 0 || !s_.backing_) return 0;
  std::uint64_t day_left = ~std::uint64_t{0};
  if (p.day_max_pages) {
    MutexLock g(mu_);
    const std::uint64_t used = day_.used(now);
    day_left = used < p.day_max_pages ? p.day_max_pages - used : 0;
  }
  const Allowance a = round_allowance(zram_utilisation(), p.round_min_pages, p.round_max_pages,
                                      backing_free(*s_.backing_), day_left);
  if (a.skip != SkipReason::none) {
    c_.rounds_skipped.fetch_add(1, std::memory_order_relaxed);
    log("policy: round %llu: no writeback (%s)",
        static_cast<unsigned long long>(c_.rounds.load(std::memory_order_relaxed)),
        skip_reason_name(a.skip));
    return 0;
  }
  std::uint64_t left = a.pages;
  for (unsigned i = 0; i < p.spec.norder && left && !paused_.load(); i++) {
    const WbKind kind = p.spec.order[i];
    PpDone done;
    const auto r = pass("writeback", std::string("type=") + wb_kind_name(kind), left, &done);
    c_.wb_kind[static_cast<unsigned>(kind)].fetch_add(done.pages, std::memory_order_relaxed);
    c_.wb_bytes.fetch_add(done.bytes, std::memory_order_relaxed);
    left -= std::min(left, done.pages);
    // The device is full, the writeback_limit spent, or another pass runs: later passes of
    // this round would meet the same.
    if (!r && (r.error() == Errc::no_memory || r.error() == Errc::busy ||
               (r.error() == Errc::io_error && s_.wb_limit_enable_.load()))) {
      break;
    }
  }
  const std::uint64_t written = a.pages - left;
  MutexLock g(mu_);
  day_.add(now, written);
  return written;
}

}  // namespace uzram
