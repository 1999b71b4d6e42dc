// store/nbd_tier.h - NbdTier, the remote backing tier's implementation (layer 3, private to
// backing_nbd.cc, its submitters and open, and nbd_io_thread.cc, its I/O thread). The
// behaviour: store/backing_nbd.h; the guide: docs/store-postprocessing.md
// #remote-backing-tier.
#ifndef UZRAM_STORE_NBD_TIER_H_
#define UZRAM_STORE_NBD_TIER_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "store/backing_alloc.h"
#include "store/backing_tier.h"
#include "store/nbd_link.h"
#include "sync/mutex.h"
#include "util/thread.h"
#include "uzram/result.h"

namespace uzram::nbdtier {

using Clock = nbdlink::Clock;
using std::chrono::milliseconds;

inline constexpr auto kMinBackoff = milliseconds(50);
inline constexpr auto kMaxBackoff = milliseconds(2000);
inline constexpr auto kTrimDelay = milliseconds(50);      // a freed block waits at most this
inline constexpr std::uint64_t kTrimBatch = 256;          // ... or until this many wait
inline constexpr unsigned kMaxTrims = 64;                 // trim commands in flight
inline constexpr std::size_t kChunk = 64;                 // requests queued per submission
inline constexpr auto kLinkConnect = milliseconds(1000);  // a direct link's handshake

class NbdTier;

// One request. Submitters own it (on their stack) until it completes; the I/O thread
// owns the trims (internal).
struct Req {
  enum Op : std::uint8_t { kRead, kWrite, kFlush, kTrim, kDrain };
  Op op = kRead;
  bool check_gen = false;  // reads and writes: refused if the loss generation moved
  bool internal = false;   // a trim of the I/O thread
  void* buf = nullptr;
  std::uint64_t len = 0, off = 0;
  std::uint64_t gen = 0;      // loss generation the caller saw
  std::uint64_t session = 0;  // flush: the connection its writes completed on
  Clock::time_point deadline;
  int err = 0;
  unsigned* remaining = nullptr;  // the submitter's count (NbdTier::done_mu_)
  NbdTier* tier = nullptr;
  Req* prev = nullptr;
  Req* next = nullptr;
};

class NbdTier final : public BackingTier {
 public:
  static constexpr unsigned kLinks = 4;  // direct links (multi-conn exports only)

  NbdTier(std::string uri, const std::atomic<std::uint32_t>& timeout_ms) noexcept
      : uri_(std::move(uri)), timeout_ms_(timeout_ms) {}
  ~NbdTier() override;
  NbdTier(const NbdTier&) = delete;
  NbdTier& operator=(const NbdTier&) = delete;

  Result<void> open(std::string* msg) noexcept;

  void write(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept override;
  int read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t gen) noexcept override;
  std::uint64_t session() const noexcept override {
    return session_.load(std::memory_order_acquire);  // pairs: the thread's connect
  }
  int sync(std::uint64_t session) noexcept override;
  // write() returns durable writes: FUA where the server takes it, else a flush after them
  // on the same connection (only when the server has a write cache: it advertises flush).
  bool volatile_writes() const noexcept override { return false; }
  unsigned batches() const noexcept override { return 4; }
  std::size_t read_align() const noexcept override { return info_.min_block; }
  bool trims() const noexcept override { return info_.can_trim; }
  bool tracks_loss() const noexcept override { return true; }
  void attach(BackingAlloc* a) noexcept override { alloc_.store(a, std::memory_order_release); }
  void drain_trims() noexcept override;
  bool connected() const noexcept override { return up_.load(std::memory_order_relaxed); }
  std::uint64_t reconnects() const noexcept override {
    return reconnects_.load(std::memory_order_relaxed);
  }
  std::uint64_t trimmed() const noexcept override {
    return trimmed_.load(std::memory_order_relaxed);
  }

 private:
  Clock::duration timeout() const noexcept {
    return milliseconds(timeout_ms_.load(std::memory_order_relaxed));
  }
  void submit_wait(Req* reqs, std::size_t n) noexcept;
  void write_queued(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept;
  int write_on(nbd_handle* h, TierWrite* ops, std::size_t n) noexcept;
  bool flush_needed() const noexcept {
    return can_flush_.load(std::memory_order_relaxed) && !fua_.load(std::memory_order_relaxed);
  }
  // Runs fn(handle) on a free direct link of the current session and returns true; false
  // when none was free (nothing ran). A link that fn leaves broken is closed.
  template <typename Fn>
  bool on_link(Fn&& fn) noexcept;
  void wake() noexcept {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  Result<void> fail(std::string* msg, std::error_code e, const std::string& text) noexcept;

  // The I/O thread.
  void run() noexcept;
  void start(Req* r) noexcept;
  static int on_done(void* user, int* error) noexcept;
  void unlink(Req* r) noexcept;
  void complete(Req* r, int err) noexcept;
  void step_link(Clock::time_point now) noexcept;
  bool finish_connect() noexcept;
  void drop(int err) noexcept;
  void issue_trims(Clock::time_point now) noexcept;
  void finish_drains(Clock::time_point now) noexcept;
  int next_timeout_ms(Clock::time_point now) const noexcept;
  void open_links(Clock::time_point now) noexcept;

  const std::string uri_;
  const std::atomic<std::uint32_t>& timeout_ms_;
  nbdlink::Info info_;  // as opened; immutable after open()
  unsigned char id_[nbdlink::kIdBytes] = {};
  int wake_fd_ = -1;  // eventfd: a submission or stop wakes the thread's poll
  Thread thread_;

  // Protects queue_ and stop_. A leaf: taken by submitters (possibly under a slot lock)
  // and the I/O thread; nothing is taken or called inside it.
  Mutex mu_{LockLevel::tier_queue, "NbdTier::mu_"};
  Req* queue_ = nullptr;
  Req** queue_tail_ = &queue_;
  bool stop_ = false;
  // Protects every submission's remaining count; done_cv_ wakes submitters. A leaf, as mu_.
  // The I/O thread touches a submitter's request last under it, so the submitter, which
  // sees its count reach 0 only under it, never frees a request the thread still uses.
  Mutex done_mu_{LockLevel::tier_done, "NbdTier::done_mu_"};
  CondVar done_cv_;

  // Set by the I/O thread, read by anyone (relaxed hints, or as noted).
  std::atomic<bool> up_{false};            // connected: submitters fail fast when not
  std::atomic<std::uint64_t> session_{0};  // connection number; release at each connect
  std::atomic<bool> can_flush_{false};     // of the current connection
  std::atomic<bool> fua_{false};  // writes carry FUA (the server takes it): no flush needed
  std::atomic<BackingAlloc*> alloc_{nullptr};  // release by attach (under init_lock_)
  std::atomic<std::uint64_t> reconnects_{0}, trimmed_{0};
  // A direct link was closed or went stale: the I/O thread opens another (relaxed: a hint,
  // the links are checked under their mutexes).
  std::atomic<bool> links_dirty_{false};

  // Direct links: extra connections on which a read, or a batch's writes, are issued and
  // awaited by the calling thread itself, with the deadline (no hop through the I/O
  // thread: half the latency of a read), for exports that advertise multi-conn (what is
  // written and made durable on one connection is then seen on all). Each link's mutex
  // gives its handle to one thread at a time: a caller (try_lock, else it queues to the I/O
  // thread) or the I/O thread (try_lock) reopening it. A link opened in an older session
  // (before a reconnect and its marker check) is never used.
  struct DirectLink {
    Mutex mu{LockLevel::tier_link, "NbdTier::DirectLink::mu"};  // under a slot lock: a read
    nbd_handle* h = nullptr;
    std::uint64_t session = 0;
  };
  DirectLink links_[kLinks];
  // The I/O thread's: makes rl a link of `session`, opening it anew (false: it could not).
  bool reopen_link(DirectLink& rl, std::uint64_t session) noexcept ZS_REQUIRES(rl.mu);

  // The I/O thread's own (the opener's before the thread starts).
  nbd_handle* h_ = nullptr;
  enum class Link { up, connecting, down } link_ = Link::down;
  Clock::time_point retry_at_{}, connect_deadline_{}, trim_at_{};
  Clock::duration backoff_ = kMinBackoff;
  Req* inflight_ = nullptr;  // issued on h_, doubly linked
  Req* drains_ = nullptr;    // drain_trims() callers waiting
  unsigned trims_inflight_ = 0;
  Req trims_[kMaxTrims];
  Req* trim_free_ = nullptr;
  Clock::time_point links_at_{};  // no direct link opened before (after a failure)
  bool links_more_ = false;       // a link was just opened: look for the next at once
};

}  // namespace uzram::nbdtier

#endif  // UZRAM_STORE_NBD_TIER_H_
