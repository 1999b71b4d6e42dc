// sync/worker.h - Worker: a lazily started background thread that runs one job each time
// it is kicked (layer 1); the userspace stand-in for a kernel work item. Used for the
// deferred free of zspages and for background compaction.
//
// Thread safety: kick() may be called from any thread but not under a spinning lock (it
// may start the thread); callers that hold one set a flag and kick after unlocking.
// flush() waits until no kick is pending and the job is not running. stop() joins.
#ifndef UZRAM_SYNC_WORKER_H_
#define UZRAM_SYNC_WORKER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "sync/lock_order.h"

namespace uzram {

class Worker {
 public:
  explicit Worker(std::function<void()> job) noexcept : job_(std::move(job)) {}
  ~Worker() { stop(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void kick() noexcept {
    might_sleep();
    std::unique_lock<std::mutex> l(mu_);
    if (stopping_) return;
    pending_ = true;
    if (!started_) {
      started_ = true;
      try {
        thread_ = std::thread([this] { loop(); });
      } catch (...) {  // no thread: run the job here instead
        started_ = false;
        pending_ = false;
        running_ = true;
        l.unlock();
        job_();
        l.lock();
        running_ = false;
        idle_.notify_all();
        return;
      }
    }
    cv_.notify_one();
  }

  void flush() noexcept {
    might_sleep();
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait(l, [this] { return (!pending_ && !running_) || !started_; });
  }

  void stop() noexcept {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() noexcept {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [this] { return pending_ || stopping_; });
      if (pending_) {
        pending_ = false;
        running_ = true;
        l.unlock();
        job_();
        l.lock();
        running_ = false;
      }
      idle_.notify_all();
      if (stopping_ && !pending_) return;
    }
  }

  std::function<void()> job_;
  // Protects: the flags below. A leaf; never held while the job runs.
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  bool pending_ = false;
  bool running_ = false;
  bool started_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_WORKER_H_
