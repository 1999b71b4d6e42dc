// nbd/server_state.h - Server::State, shared by the server's files (private to src/nbd):
// server.cc (listening sockets, start and stop), acceptor.cc (the accept thread: waiting
// connections, admission, handshake deadlines), connection.cc (a connection's thread).
//
// A connection goes through three stages:
//   waiting      accepted, greeted, no thread yet: the accept thread collects the client's
//                first kPromoteBytes bytes (its flags and first option header) with poll;
//   negotiating  the rest of the handshake on its own thread (at most max_negotiating);
//   transmission the session (at most max_connections with the negotiating ones).
// The whole handshake, waiting included, ends at one deadline set at accept.
#ifndef UZRAM_NBD_SERVER_STATE_H_
#define UZRAM_NBD_SERVER_STATE_H_

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "nbd/admission.h"
#include "nbd/deadline.h"
#include "nbd/exports.h"
#include "nbd/server.h"
#include "nbd/stats.h"
#include "util/thread.h"

namespace uzram::nbd {

// A waiting connection gets a thread once it sent this much: its 4 flag bytes and the
// 16-byte header of its first option, which every client sends without waiting for an
// answer. A client trickling bytes never gets that far before its deadline.
inline constexpr std::size_t kPromoteBytes = 20;
// A connection's thread ends its handshake at the deadline itself (every read, write and
// TLS call is bounded by it); the accept thread shuts down, this much later, any socket
// whose thread has not, whatever it is blocked in.
inline constexpr auto kBackstop = std::chrono::milliseconds(200);

struct Server::State {
  enum class Phase { negotiating, transmission, closing };
  struct Conn {
    Conn* prev = nullptr;  // State::head/tail, in promotion order
    Conn* next = nullptr;
    std::uint64_t id = 0;
    int fd = -1;  // closed (and -1) only by the connection's thread, under mu
    Phase phase = Phase::negotiating;
    Clock::time_point born;  // when it got its thread (the eviction grace counts from here)
    Deadline deadline;       // of the handshake, from accept
    std::uint8_t preread[kPromoteBytes] = {};
    bool done = false;  // the thread is finishing: join it
    Thread thread;
  };
  // A waiting connection. The accept thread's alone (stop() runs after it is joined).
  struct Waiting {
    int fd = -1;
    std::uint64_t id = 0;
    Clock::time_point born;
    Deadline deadline;
    std::uint8_t got[kPromoteBytes] = {};
    std::size_t n = 0;  // == kPromoteBytes: ready for a thread
  };

  Exports* exports = nullptr;
  std::unique_ptr<SingleExport> single;  // start(Backend&): the one export, owned here
  ServerStats stats;                     // options.session.stats points here
  ServerOptions options;
  AdmissionLimits limits;
  std::string uri;
  std::string unix_path;  // to remove on stop
  bool tcp = false, tcp_loopback = false;
  int listen_fd = -1;          // non-blocking
  int wake[2] = {-1, -1};      // non-blocking: connection threads and stop() nudge the acceptor
  Thread acceptor;             // running: stopped is false
  Waiting* waiting = nullptr;  // [max_waiting], accept order not kept
  unsigned nwaiting = 0, max_waiting = 0;
  pollfd* pfds = nullptr;     // [2 + max_waiting], the accept thread's poll set
  std::uint64_t next_id = 1;  // connection ids, the accept thread's

  // Protects the connection list, the counts, stopped, the log limiter,
  // and each Conn's fd, phase and done. A leaf: nothing is locked under it (the log sink
  // does not block).
  std::mutex mu;
  Conn* head = nullptr;
  Conn* tail = nullptr;
  AdmissionState counts;
  bool stopped = true;            // until the acceptor runs
  Clock::time_point quiet_until;  // closings logged at most once a second
  unsigned unlogged = 0;

  State() = default;
  ~State() {
    delete[] waiting;
    delete[] pfds;
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  void nudge() noexcept {
    const char b = 1;
    (void)!::write(wake[1], &b, 1);  // full pipe: a nudge is already pending
  }

  // ---- acceptor.cc: the accept thread ----
  void accept_loop() noexcept;
  // Closes handshakes past their deadline (+ kBackstop); unlinks finished connections
  // into *done. Returns when to sweep next (or none).
  Deadline sweep_locked(Clock::time_point now, Conn** done) noexcept;
  // Gives threads to ready waiting connections while slots allow; *next: when to retry.
  void promote_locked(Clock::time_point now, Deadline* next) noexcept;
  bool start_thread_locked(Waiting& w, Clock::time_point now) noexcept;
  // Accepts and greets while there is room among the waiting. 0, or the errno of a
  // resource failure (EMFILE...) after which accepting should pause.
  int accept_new(Clock::time_point now) noexcept;
  void read_waiting(Waiting& w, short revents) noexcept;
  void drop_waiting(unsigned i) noexcept;  // closes and removes waiting[i]
  // Logs `what` about a closed connection, at most once a second (then with a count).
  void log_closed_locked(Clock::time_point now, const char* what) noexcept;
  void link(Conn* c) noexcept;
  void unlink(Conn* c) noexcept;
  void close_negotiating_locked(Conn* c) noexcept;
  Conn* oldest_negotiating_locked() const noexcept;

  // ---- connection.cc: a connection's thread ----
  void serve(Conn* c) noexcept;
  void finish(Conn* c) noexcept;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SERVER_STATE_H_
