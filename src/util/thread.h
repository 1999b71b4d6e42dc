// util/thread.h - Thread: a joinable thread started without exceptions (layer 0), for code
// that must survive running out of threads or memory (std::thread throws; a server thread
// that lets it escape calls std::terminate).
//
// Fault injection: UZRAM_FAULT_THREAD_CREATE="N[,M...]" (read once, at the first start in
// the process) makes the Nth, Mth... Thread::start of the process fail with EAGAIN, as
// under a pids cgroup or RLIMIT_NPROC. Compiled into every build; inert unless set.
#ifndef UZRAM_UTIL_THREAD_H_
#define UZRAM_UTIL_THREAD_H_

#include <pthread.h>

#include <cerrno>
#include <new>
#include <type_traits>
#include <utility>

namespace uzram {

class Thread {
 public:
  Thread() noexcept = default;
  Thread(Thread&& o) noexcept : id_(o.id_), joinable_(std::exchange(o.joinable_, false)) {}
  Thread& operator=(Thread&& o) noexcept;
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  ~Thread();  // aborts when still joinable (as std::thread, but with a message)

  // Starts f() on a new thread. 0, or an errno: EAGAIN (no thread: system limit or injected
  // fault), ENOMEM (no memory for the closure). On failure f is destroyed unrun.
  template <typename F>
  [[nodiscard]] int start(F f) noexcept {
    static_assert(std::is_nothrow_move_constructible_v<F>,
                  "the closure must move without throwing");
    auto* box = new (std::nothrow) Box<F>(std::move(f));
    if (box == nullptr) return ENOMEM;
    const int rc = create(&Box<F>::run, box);
    if (rc != 0) delete box;
    return rc;
  }
  void join() noexcept;
  [[nodiscard]] bool joinable() const noexcept { return joinable_; }

 private:
  template <typename F>
  struct Box {
    explicit Box(F&& fn) noexcept : f(std::move(fn)) {}
    static void* run(void* p) noexcept {
      auto* self = static_cast<Box*>(p);
      self->f();
      delete self;
      return nullptr;
    }
    F f;
  };
  int create(void* (*fn)(void*), void* arg) noexcept;

  pthread_t id_{};
  bool joinable_ = false;
};

}  // namespace uzram

#endif  // UZRAM_UTIL_THREAD_H_
