// store/policy.h - Policy: the store's tiering policy engine (layer 3), configured by the
// `policy` attribute and observed through `policy_stat`. Guide:
// docs/store-postprocessing.md#policy; locks: docs/locking.md#policy.
//
// It runs on one background Worker (sync/worker.h), in two ways:
//  * time-driven rounds (policy_round.cc): every `interval` (with `backoff` after the end of
//    a round) it marks idle the blocks older than the ChromeOS idle age, optionally
//    recompresses, then runs the writeback passes of `order` within the round's allowance
//    and the day's budget;
//  * the memory reaction (policy_pressure.cc): with mem_limit set, when the pool grows past
//    the high watermark, or a write meets mem_limit, it writes back (or recompresses) the
//    coldest blocks, found with an age histogram, until the pool is under the low watermark.
//    A write that met mem_limit waits for that room (wait_for_room, bounded by `wait`).
// Every pass goes through the attributes' own entry points (store/pp_run.h), under
// init_lock_ shared, so it locks one slot at a time, briefly, as those commands do.
//
// Clock: the store's (StoreImpl::now_seconds, the seconds of slot access times), so a test
// that moves the store's clock moves the policy's too; the worker's timers are real time.
// Thread safety: every public method may be called from any thread (see each for the locks
// its caller holds).
#ifndef UZRAM_STORE_POLICY_H_
#define UZRAM_STORE_POLICY_H_

#include <atomic>
#include <cstdint>

#include "store/policy_math.h"
#include "store/policy_spec.h"
#include "sync/mutex.h"
#include "sync/worker.h"

namespace uzram {

class StoreImpl;
struct PpDone;

// policy_stat, in its order (docs/store-postprocessing.md#policy_stat-and-the-log).
struct PolicyStats {
  std::uint64_t rounds = 0;              // time-driven rounds run
  std::uint64_t rounds_skipped = 0;      // rounds whose writeback the allowance skipped
  std::uint64_t idle_marked = 0;         // blocks marked idle by rounds (cumulative)
  std::uint64_t recompressed = 0;        // blocks recompressed into a smaller class
  std::uint64_t recomp_saved = 0;        // pool bytes those saved
  std::uint64_t wb_kind[kWbKinds] = {};  // blocks written back by rounds, by WbKind
  std::uint64_t wb_pressure = 0;         // blocks written back by the memory reaction
  std::uint64_t wb_bytes = 0;            // pool bytes freed by all of the policy's writebacks
  std::uint64_t passes = 0;              // writeback and recompress passes run
  std::uint64_t pass_errors = 0;         // passes that failed (busy, device full, I/O, ...)
  std::uint64_t triggers = 0;            // memory reactions
  std::uint64_t waited = 0;              // writes that met mem_limit and waited
  std::uint64_t wait_ms = 0;             // their total wait
  std::uint64_t limit_failed = 0;        // writes failed at mem_limit with the reaction on
  std::uint64_t idle_age = 0;            // the last round's idle age, seconds
};

// Usable blocks of the backing tier (0: none), as the engine scales its sizes: its
// allocator's once initialised, else what the tier holds (block 0 is never used). Caller
// holds init_lock_.
std::uint64_t policy_backing_blocks(const StoreImpl& s) noexcept;

class Policy {
 public:
  explicit Policy(StoreImpl& s) noexcept;
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // ---- Configuration (policy_attr.cc, and the store's lifecycle) ----
  [[nodiscard]] PolicySpec spec() const noexcept;
  // Installs `spec`; switching it on starts the round clock now. Caller holds init_lock_
  // (shared is enough).
  void set_spec_locked(const PolicySpec& spec) noexcept;
  // Recomputes the write path's thresholds from the spec, mem_limit, the backing device and
  // the recompression algorithms, and wakes the worker: after policy, mem_limit and
  // disksize writes. Caller holds init_lock_ (either mode).
  void limits_changed_locked() noexcept;
  // reset: policy off, counters, schedule and day window cleared. Caller holds init_lock_
  // exclusive (so neither the worker nor a waiting write is inside the store).
  void reset_locked() noexcept;
  // A reset or disksize waits for init_lock_ exclusive: between pause() and resume() the
  // worker stops between passes and starts nothing.
  void pause() noexcept;
  void resume() noexcept;
  // Joins the worker (the store's destruction, before anything is freed).
  void stop() noexcept;

  // ---- The write path (io.cc); caller holds init_lock_ shared, no slot lock ----
  // Pool pages above which the worker reacts; ~0 when it does not.
  [[nodiscard]] std::uint64_t high_pages() const noexcept {
    return high_pages_.load(std::memory_order_relaxed);  // advisory: see high_pages_
  }
  // The pool is above the high watermark: wakes the worker (once until it reacts).
  void over_high() noexcept;
  // Whether the memory reaction is on: a write that meets mem_limit then asks
  // wait_for_room() (which may fail it at once) instead of failing.
  [[nodiscard]] bool reacts() const noexcept { return high_pages() != ~std::uint64_t{0}; }
  // Waits, at most `wait`, until the pool is back within mem_limit. The caller holds no
  // slot lock and no stream, only init_lock_ shared, and its new object is allocated and
  // written (it counts in the pool). False (counted in limit_failed): wait=0, no room in
  // time, or the reaction found none to make.
  [[nodiscard]] bool wait_for_room() noexcept;

  [[nodiscard]] PolicyStats stats() const noexcept;

  // Tests: wakes the worker and waits until it has nothing left to do now.
  void run_now() noexcept;

 private:
  // The atomics behind PolicyStats (relaxed: statistics, read whole by nobody).
  struct Counters {
    std::atomic<std::uint64_t> rounds{0}, rounds_skipped{0}, idle_marked{0}, recompressed{0},
        recomp_saved{0}, wb_kind[kWbKinds]{}, wb_pressure{0}, wb_bytes{0}, passes{0},
        pass_errors{0}, triggers{0}, waited{0}, wait_us{0}, limit_failed{0}, idle_age{0};
  };
  struct Step {                // one step of the memory reaction
    std::uint64_t blocks = 0;  // written back or recompressed
    bool busy = false;         // another pass was running
  };

  void job() noexcept;                                            // policy.cc, on the worker
  void round(const PolicyParams& p, std::uint64_t now) noexcept;  // policy_round.cc
  std::uint64_t round_writeback(const PolicyParams& p, std::uint64_t now) noexcept;
  void react(const PolicyParams& p) noexcept;  // policy_pressure.cc
  Step free_coldest(const PolicyParams& p, std::uint64_t need, std::uint64_t low) noexcept;
  // Runs one pass (pp_run.h) from its attribute text; counts it, logs a failure. Errc::busy
  // is returned as such (another pass runs); other errors end with *done as it is.
  Result<void> pass(const char* attr, const std::string& text, std::uint64_t max_pages,
                    PpDone* done) noexcept;
  bool has_room() const noexcept;
  bool hopeless_now() const noexcept;
  double memory_utilisation() const noexcept;
  double zram_utilisation() const noexcept;
  bool recompression_configured() const noexcept;
  void log(const char* fmt, ...) const noexcept __attribute__((format(printf, 2, 3)));

  StoreImpl& s_;

  // Protects: spec_, clock_, anchored_ and day_. Level policy (25): taken alone or under
  // init_lock_ (either mode), never with a slot lock or room_mu_; a leaf. The worker copies
  // what it needs and drops it before any pass.
  mutable Mutex mu_{LockLevel::policy, "Policy::mu_"};
  PolicySpec spec_ ZS_GUARDED_BY(mu_);
  RoundClock clock_ ZS_GUARDED_BY(mu_);
  bool anchored_ ZS_GUARDED_BY(mu_) = false;  // clock_.anchor set; else the worker sets it
  DayWindow day_ ZS_GUARDED_BY(mu_);          // every block the policy wrote back

  // The write path's view, recomputed by limits_changed_locked() and reset_locked() under
  // init_lock_. Relaxed: advisory thresholds; a write that reads a stale value waits or
  // fails as under the old one, and the worker re-reads everything under init_lock_.
  std::atomic<std::uint64_t> high_pages_{~std::uint64_t{0}};
  std::atomic<std::uint64_t> wait_ms_{0};  // 0: writes at mem_limit fail at once
  // A reaction is wanted: set by writers (over_high, wait_for_room), cleared by the worker
  // as it starts one (exchange, acq_rel: pairs writer and worker; the state itself is
  // re-read by the worker under init_lock_).
  std::atomic<bool> pressure_{false};
  // Set by pause(), cleared by resume() (seq_cst: rare).
  std::atomic<bool> paused_{false};
  // steady_clock milliseconds until which the last reaction's failure to make room holds:
  // writes at mem_limit fail at once, and over_high() wakes nobody (relaxed: a hint).
  std::atomic<std::int64_t> hopeless_until_ms_{0};

  // Protects: started_, finished_, last_hopeless_, and is room_cv_'s mutex. Level
  // policy_room (26), never held with mu_; waiting writers take it under init_lock_ shared
  // (and an NBD stripe; no slot lock), the worker under init_lock_ shared. A leaf.
  mutable Mutex room_mu_{LockLevel::policy_room, "Policy::room_mu_"};
  CondVar room_cv_;
  std::uint64_t started_ ZS_GUARDED_BY(room_mu_) = 0;   // memory reactions begun
  std::uint64_t finished_ ZS_GUARDED_BY(room_mu_) = 0;  // and ended
  // The last ended one left the pool over mem_limit, stuck.
  bool last_hopeless_ ZS_GUARDED_BY(room_mu_) = false;

  Counters c_;
  Worker worker_;  // last: joined first
};

}  // namespace uzram

#endif  // UZRAM_STORE_POLICY_H_
