// util/thread.cc - Thread: pthread_create behind an errno, with the fault-injection seam.
#include "util/thread.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "util/check.h"

namespace uzram {
namespace {

// Which thread starts fail: ordinals (1-based) from UZRAM_FAULT_THREAD_CREATE.
struct FaultPlan {
  static constexpr int kMax = 32;
  std::uint64_t fail[kMax] = {};
  int count = 0;
  std::atomic<std::uint64_t> started{0};  // relaxed: an ordinal, no data published with it

  FaultPlan() noexcept {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in uzram writes its environment
    const char* spec = std::getenv("UZRAM_FAULT_THREAD_CREATE");
    if (spec == nullptr) return;
    while (*spec != '\0' && count < kMax) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(spec, &end, 10);
      ZS_CHECK(end != spec && n > 0 && (*end == ',' || *end == '\0'),
               "UZRAM_FAULT_THREAD_CREATE: want N[,M...] (1-based thread ordinals), got '%s'",
               spec);
      fail[count++] = n;
      spec = *end == ',' ? end + 1 : end;
    }
  }
  bool should_fail() noexcept {
    if (count == 0) return false;
    const std::uint64_t n = started.fetch_add(1, std::memory_order_relaxed) + 1;
    for (int i = 0; i < count; i++) {
      if (fail[i] == n) return true;
    }
    return false;
  }
};

FaultPlan& plan() noexcept {
  static FaultPlan p;  // read once, at the first start
  return p;
}

}  // namespace

Thread& Thread::operator=(Thread&& o) noexcept {
  ZS_CHECK(!joinable_, "Thread assigned over a joinable thread");
  id_ = o.id_;
  joinable_ = std::exchange(o.joinable_, false);
  return *this;
}

Thread::~Thread() { ZS_CHECK(!joinable_, "Thread destroyed while joinable (join it first)"); }

int Thread::create(void* (*fn)(void*), void* arg) noexcept {
  ZS_CHECK(!joinable_, "Thread started twice");
  if (plan().should_fail()) return EAGAIN;
  const int rc = ::pthread_create(&id_, nullptr, fn, arg);
  if (rc == 0) joinable_ = true;
  return rc;
}

void Thread::join() noexcept {
  ZS_CHECK(joinable_, "Thread::join without a thread");
  const int rc = ::pthread_join(id_, nullptr);
  ZS_CHECK(rc == 0, "pthread_join: error %d", rc);
  joinable_ = false;
}

}  // namespace uzram
