// store/policy.cc - Policy: configuration, lifecycle and the worker's job (policy.h). The
// rounds are policy_round.cc, the memory reaction and waiting writes policy_pressure.cc,
// the attributes policy_attr.cc.
#include "store/policy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "store/backing.h"
#include "store/pp_run.h"
#include "store/store_impl.h"

namespace uzram {

std::uint64_t policy_backing_blocks(const StoreImpl& s) noexcept {
  s.init_lock_.assert_held_shared();
  if (!s.backing_) return 0;
  const StoreImpl::Backing& b = *s.backing_;
  const std::uint64_t n = b.alloc.nblocks() ? b.alloc.nblocks() : b.tier->size_blocks();
  return n ? n - 1 : 0;
}

Policy::Policy(StoreImpl& s) noexcept : s_(s), worker_([this] { job(); }) {}

Policy::~Policy() { stop(); }

PolicySpec Policy::spec() const noexcept {
  MutexLock g(mu_);
  return spec_;
}

void Policy::set_spec_locked(const PolicySpec& spec) noexcept {
  s_.init_lock_.assert_held_shared();
  {
    MutexLock g(mu_);
    if (spec_.mode == PolicyMode::off && spec.mode != PolicyMode::off) {
      clock_ = RoundClock{};  // the first round is `interval` from now
      anchored_ = s_.slots_ != nullptr;
      if (anchored_) clock_.anchor = s_.now_seconds();
    }
    spec_ = spec;
  }
  limits_changed_locked();
}

void Policy::limits_changed_locked() noexcept {
  s_.init_lock_.assert_held_shared();
  bool on;
  {
    MutexLock g(mu_);
    const std::uint64_t limit = s_.mem_limit_pages_.load(std::memory_order_relaxed);
    const bool can_make_room = (spec_.pressure_writeback && s_.backing_) ||
                               (spec_.pressure_recompress && recompression_configured());
    on = spec_.mode != PolicyMode::off && s_.slots_;
    const bool react = on && limit && can_make_room;
    high_pages_.store(react ? limit * spec_.high / 100 : ~std::uint64_t{0},
                      std::memory_order_relaxed);
    wait_ms_.store(react ? spec_.wait_ms : 0, std::memory_order_relaxed);
    hopeless_until_ms_.store(0, std::memory_order_relaxed);
  }
  room_cv_.notify_all();  // waiting writes re-read wait_ms_ (0: they give up)
  if (on) worker_.kick_after(std::chrono::milliseconds(0));  // never runs the job inline
}

void Policy::reset_locked() noexcept {
  {
    MutexLock g(mu_);
    spec_ = PolicySpec{};
    clock_ = RoundClock{};
    anchored_ = false;
    day_.clear();
  }
  {
    MutexLock g(room_mu_);
    started_ = finished_ = 0;
    last_hopeless_ = false;
  }
  high_pages_.store(~std::uint64_t{0}, std::memory_order_relaxed);
  wait_ms_.store(0, std::memory_order_relaxed);
  pressure_.store(false, std::memory_order_relaxed);
  hopeless_until_ms_.store(0, std::memory_order_relaxed);
  for (auto* c : {&c_.rounds, &c_.rounds_skipped, &c_.idle_marked, &c_.recompressed,
                  &c_.recomp_saved, &c_.wb_pressure, &c_.wb_bytes, &c_.passes, &c_.pass_errors,
                  &c_.triggers, &c_.waited, &c_.wait_us, &c_.limit_failed, &c_.idle_age}) {
    c->store(0, std::memory_order_relaxed);
  }
  for (auto& c : c_.wb_kind) c.store(0, std::memory_order_relaxed);
}

void Policy::pause() noexcept { paused_.store(true); }

void Policy::resume() noexcept {
  paused_.store(false);
  bool on;
  {
    MutexLock g(mu_);
    on = spec_.mode != PolicyMode::off;
  }
  // What the pause put off, if anything; a policy that is off starts no thread.
  if (on) worker_.kick_after(std::chrono::milliseconds(0));
}

void Policy::stop() noexcept { worker_.stop(); }

// kick(), not kick_after(): flush() waits for kicks, not for timers. The caller holds no
// store lock, so the job may run inline should no thread start.
void Policy::run_now() noexcept {
  worker_.kick();
  worker_.flush();
}

PolicyStats Policy::stats() const noexcept {
  const auto ld = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  PolicyStats st;
  st.rounds = ld(c_.rounds);
  st.rounds_skipped = ld(c_.rounds_skipped);
  st.idle_marked = ld(c_.idle_marked);
  st.recompressed = ld(c_.recompressed);
  st.recomp_saved = ld(c_.recomp_saved);
  for (unsigned k = 0; k < kWbKinds; k++) st.wb_kind[k] = ld(c_.wb_kind[k]);
  st.wb_pressure = ld(c_.wb_pressure);
  st.wb_bytes = ld(c_.wb_bytes);
  st.passes = ld(c_.passes);
  st.pass_errors = ld(c_.pass_errors);
  st.triggers = ld(c_.triggers);
  st.waited = ld(c_.waited);
  st.wait_ms = ld(c_.wait_us) / 1000;
  st.limit_failed = ld(c_.limit_failed);
  st.idle_age = ld(c_.idle_age);
  return st;
}

// ---- The worker ---------------------------------------------------------------------------

// One wake-up: the memory reaction if one is wanted, then a round if one is due; then the
// timer for the next round. Everything under init_lock_ shared, as the attributes' passes.
void Policy::job() noexcept {
  if (paused_.load()) return;  // resume() kicks again
  ReaderLock l(s_.init_lock_);
  if (!s_.slots_) return;
  PolicyParams p;
  {
    MutexLock g(mu_);
    if (spec_.mode == PolicyMode::off) return;
    p = resolve_policy(spec_, policy_backing_blocks(s_));
    if (!anchored_) {
      clock_.anchor = s_.now_seconds();
      anchored_ = true;
    }
  }
  const std::uint64_t high = high_pages_.load(std::memory_order_relaxed);
  if (pressure_.exchange(false, std::memory_order_acq_rel) || s_.pool_->total_pages() > high) {
    react(p);
  }
  if (p.spec.interval == 0 || paused_.load()) return;
  std::uint64_t now = s_.now_seconds(), due;
  {
    MutexLock g(mu_);
    due = clock_.next_due(p.spec.interval, p.spec.backoff);
  }
  if (now >= due) {
    round(p, now);
    now = s_.now_seconds();
    MutexLock g(mu_);
    due = clock_.next_due(p.spec.interval, p.spec.backoff);
  }
  // Real seconds until the store's clock reaches `due` (a test that moves the clock kicks).
  worker_.kick_after(std::chrono::seconds(due > now ? due - now : 1));
}

Result<void> Policy::pass(const char* attr, const std::string& text, std::uint64_t max_pages,
                          PpDone* done) noexcept {
  AttrArg arg;
  std::string msg;
  const bool wb = attr[0] == 'w';
  auto r = wb ? attr::parse_writeback(s_, text, &arg, &msg)
              : attr::parse_recompress(s_, text, &arg, &msg);
  if (r) {
    c_.passes.fetch_add(1, std::memory_order_relaxed);
    if (wb) {
      arg.writeback.max_pages = max_pages;
      r = run_writeback(s_, arg.writeback, done, &msg);
    } else {
      arg.recompress.max_pages = max_pages;
      r = run_recompress(s_, arg.recompress, done, &msg);
    }
  }
  if (!r) {
    c_.pass_errors.fetch_add(1, std::memory_order_relaxed);
    log("policy: %s %s: %s", attr, text.c_str(),
        msg.empty() ? r.error().message().c_str() : msg.c_str());
  }
  return r;
}

// ---- Measures -----------------------------------------------------------------------------

bool Policy::recompression_configured() const noexcept {
  s_.init_lock_.assert_held_shared();
  for (unsigned p = 1; p < kMaxPriorities; p++) {
    if (s_.slots_ ? s_.streams_[p].active() : !s_.comp_[p].name.empty()) return true;
  }
  return false;
}

// The pool against mem_limit, or without one the system's memory (/proc/meminfo); 0 when
// neither can be read.
double Policy::memory_utilisation() const noexcept {
  s_.init_lock_.assert_held_shared();
  const std::uint64_t limit = s_.mem_limit_pages_.load(std::memory_order_relaxed);
  if (limit) return static_cast<double>(s_.pool_->total_pages()) / static_cast<double>(limit);
  const int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  const double u =
      n > 0 ? meminfo_utilisation(std::string_view(buf, static_cast<std::size_t>(n))) : -1;
  return u < 0 ? 0 : u;
}

// The share of the device whose data is in RAM (stored, not written back).
double Policy::zram_utilisation() const noexcept {
  s_.init_lock_.assert_held_shared();
  const std::uint64_t stored = s_.stats_.pages_stored.load(std::memory_order_relaxed);
  const std::uint64_t wb = s_.stats_.bd_count.load(std::memory_order_relaxed);
  return static_cast<double>(stored > wb ? stored - wb : 0) / static_cast<double>(s_.nslots_);
}

void Policy::log(const char* fmt, ...) const noexcept {
  if (!s_.logging()) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s_.log(line);
}

}  // namespace uzram
