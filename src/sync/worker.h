// sync/worker.h - Worker: a lazily started background thread that runs one job each time
// it is kicked (layer 1); the userspace stand-in for a kernel work item (kick) and a
// delayed work item (kick_after). Used for the deferred free of zspages, background
// compaction and the decay of idle frames.
//
// Thread safety: kick() and kick_after() may be called from any thread but not under a
// spinning lock (they may start the thread); callers that hold one set a flag and kick
// after unlocking. The thread blocks every signal: a process that takes its signals in one
// thread (uzram serve's sigwaitinfo) still gets them there, whenever a worker started. flush()
// waits until no kick is pending and the job is not running (a timer that has not fired yet is not
// pending). stop() joins; timers are dropped.
#ifndef UZRAM_SYNC_WORKER_H_
#define UZRAM_SYNC_WORKER_H_

#include <pthread.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <thread>

#include "sync/lock_order.h"
#include "sync/mutex.h"

namespace uzram {

class Worker {
 public:
  explicit Worker(std::function<void()> job) noexcept : job_(std::move(job)) {}
  ~Worker() { stop(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void kick() noexcept ZS_EXCLUDES(mu_) {
    MutexLock l(mu_);
    if (stopping_) return;
    pending_ = true;
    start_locked(true);
  }

  // Runs the job once `delay` from now (or earlier, when a kick or an earlier timer comes
  // first); one timer at a time: the earliest deadline wins. Without a thread (none could
  // be started) or once stopping, the timer is dropped and false returned: callers must
  // not depend on it for correctness.
  bool kick_after(std::chrono::milliseconds delay) noexcept ZS_EXCLUDES(mu_) {
    MutexLock l(mu_);
    if (stopping_) return false;
    const Clock::time_point at = Clock::now() + delay;
    if (has_deadline_ && deadline_ <= at) return true;
    has_deadline_ = true;
    deadline_ = at;
    if (started_) {
      cv_.notify_one();
      return true;
    }
    if (!start_locked(false)) has_deadline_ = false;
    return has_deadline_;
  }

  // Starts the thread now, without a job (so that a later kick needs no new thread).
  // False when none could be started (the kicks then run the job inline, as without it).
  bool start() noexcept ZS_EXCLUDES(mu_) {
    MutexLock l(mu_);
    if (stopping_) return false;
    if (started_) return true;
    return start_locked(false);
  }

  void flush() noexcept ZS_EXCLUDES(mu_) {
    MutexLock l(mu_);
    while ((pending_ || running_) && started_) idle_.wait(mu_);
  }

  void stop() noexcept ZS_EXCLUDES(mu_) {
    {
      MutexLock l(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  using Clock = std::chrono::steady_clock;

  // Starts the thread if needed and wakes it; false when no thread could be started (then,
  // with run_inline, the job has run on the caller's thread, mu_ dropped meanwhile).
  bool start_locked(bool run_inline) noexcept ZS_REQUIRES(mu_) {
    if (!started_) {
      started_ = true;
      if (!spawn()) {  // no thread: run the job here instead
        started_ = false;
        if (!run_inline) return false;
        pending_ = false;
        running_ = true;
        mu_.unlock();
        job_();
        mu_.lock();
        running_ = false;
        idle_.notify_all();
        return false;
      }
    }
    cv_.notify_one();
    return true;
  }

  // Starts the thread with every signal blocked (it inherits the mask it is created with).
  bool spawn() noexcept {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = true;
    try {
      thread_ = std::thread([this] { loop(); });
    } catch (...) {
      ok = false;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return ok;
  }

  // One pass per wake-up, re-reading the state each time: a timer armed (or moved) while
  // the thread sleeps wakes it (kick_after notifies) and it then waits for that deadline.
  void loop() noexcept ZS_EXCLUDES(mu_) {
    MutexLock l(mu_);
    for (;;) {
      if (!pending_ && has_deadline_ && Clock::now() >= deadline_) {
        has_deadline_ = false;  // the timer fired: run the job as for a kick
        pending_ = true;
      }
      if (pending_) {
        pending_ = false;
        running_ = true;
        l.unlock();
        job_();
        l.lock();
        running_ = false;
        idle_.notify_all();
        continue;
      }
      idle_.notify_all();
      if (stopping_) return;
      if (has_deadline_) {
        cv_.wait_until(mu_, deadline_);
      } else {
        cv_.wait(mu_);
      }
    }
  }

  std::function<void()> job_;
  // Protects: the flags below. Level: worker (a leaf); never held while the job runs.
  Mutex mu_{LockLevel::worker, "worker"};
  CondVar cv_;    // the thread waits here for a kick, a timer or stop()
  CondVar idle_;  // flush() waits here for the job to finish
  bool pending_ ZS_GUARDED_BY(mu_) = false;
  bool running_ ZS_GUARDED_BY(mu_) = false;
  bool started_ ZS_GUARDED_BY(mu_) = false;
  bool stopping_ ZS_GUARDED_BY(mu_) = false;
  bool has_deadline_ ZS_GUARDED_BY(mu_) = false;  // a kick_after() timer is armed for deadline_
  Clock::time_point deadline_ ZS_GUARDED_BY(mu_){};
  std::thread thread_;  // started under mu_; joined by stop() (one caller: the owner)
};

}  // namespace uzram

#endif  // UZRAM_SYNC_WORKER_H_
