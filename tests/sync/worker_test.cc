// Worker: kicks run the job on the background thread; kick_after() timers run it later,
// also when armed while the thread sleeps with nothing to do (the decay of idle frames
// depends on it); stop() drops pending timers; the thread blocks every signal.
#include "sync/worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace uzram {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Polls until count reaches want or 10 s pass (a busy machine may run timers late).
bool reaches(const std::atomic<int>& count, int want) {
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (count.load() < want && Clock::now() < until) std::this_thread::sleep_for(milliseconds(2));
  return count.load() >= want;
}

TEST(WorkerTest, KickRunsTheJob) {
  std::atomic<int> n{0};
  Worker w([&] { n++; });
  w.kick();
  w.flush();
  EXPECT_EQ(n.load(), 1);
}

// A process that takes its signals with sigwaitinfo in one thread (uzram serve) must still
// get them when a worker started before it blocked them: the worker blocks every signal.
TEST(WorkerTest, TheThreadBlocksEverySignal) {
  std::atomic<bool> blocked{false};
  Worker w([&] {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    blocked = sigismember(&cur, SIGCHLD) == 1 && sigismember(&cur, SIGTERM) == 1 &&
              sigismember(&cur, SIGINT) == 1;
  });
  sigset_t before, after;
  pthread_sigmask(SIG_BLOCK, nullptr, &before);
  w.kick();
  w.flush();
  EXPECT_TRUE(blocked.load());
  pthread_sigmask(SIG_BLOCK, nullptr, &after);  // the starting thread's mask is restored
  EXPECT_EQ(sigismember(&before, SIGCHLD), sigismember(&after, SIGCHLD));
  EXPECT_EQ(sigismember(&before, SIGTERM), sigismember(&after, SIGTERM));
}

TEST(WorkerTest, KickAfterRunsTheJobLater) {
  std::atomic<int> n{0};
  Worker w([&] { n++; });
  const auto t0 = Clock::now();
  w.kick_after(milliseconds(100));
  EXPECT_TRUE(reaches(n, 1));
  EXPECT_GE(Clock::now() - t0, milliseconds(100));
  EXPECT_EQ(n.load(), 1);
}

// The thread sleeps with no timer after a kick; a timer armed then must still fire.
TEST(WorkerTest, TimerArmedWhileTheThreadIsIdleFires) {
  std::atomic<int> n{0};
  Worker w([&] { n++; });
  w.kick();
  w.flush();
  std::this_thread::sleep_for(milliseconds(20));  // the thread is back in its untimed wait
  w.kick_after(milliseconds(10));
  EXPECT_TRUE(reaches(n, 2)) << "the timer armed while the worker was idle never fired";
}

TEST(WorkerTest, EarliestDeadlineWins) {
  std::atomic<int> n{0};
  Worker w([&] { n++; });
  w.kick_after(std::chrono::hours(1));
  w.kick_after(milliseconds(10));
  EXPECT_TRUE(reaches(n, 1));
}

// A job that re-arms its own timer (as the decay does) keeps running.
TEST(WorkerTest, JobCanRearmItself) {
  std::atomic<int> n{0};
  Worker* self = nullptr;
  Worker w([&] {
    if (++n < 5) self->kick_after(milliseconds(1));
  });
  self = &w;
  w.kick();
  EXPECT_TRUE(reaches(n, 5));
}

TEST(WorkerTest, StopDropsPendingTimers) {
  std::atomic<int> n{0};
  const auto t0 = Clock::now();
  {
    Worker w([&] { n++; });
    w.kick_after(std::chrono::hours(1));
  }  // ~Worker stops it
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(n.load(), 0);
}

}  // namespace
}  // namespace uzram
