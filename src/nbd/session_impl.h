// nbd/session_impl.h - Session, private to src/nbd: session.cc (the reader, the workers,
// request execution, the in-flight budget) and session_reply.cc (replies, encoded by
// protocol.h and sent whole).
//
// Where a request's memory comes from (SessionOptions::preallocate):
//   on demand   its Job from the heap (nothrow) and its data buffer from get_buffer
//               (nbd/io_buffers.h: large ones mapped, a few kept while requests are in
//               flight, all unmapped when none is), when it arrives; the in-flight
//               budget (max_in_flight_bytes) bounds what is outstanding;
//   preallocated a slot and a piece of the connection's RequestPool, allocated when the
//               connection entered transmission; a READ or WRITE longer than a piece is
//               served through its one piece, piece by piece (a long WRITE by the reader
//               as its payload arrives, a long READ by a worker under the send mutex).
#ifndef UZRAM_NBD_SESSION_IMPL_H_
#define UZRAM_NBD_SESSION_IMPL_H_

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "nbd/io_buffers.h"
#include "nbd/request_pool.h"
#include "nbd/session.h"
#include "nbd/stats.h"
#include "nbd/store_backend.h"
#include "sync/mutex.h"

namespace uzram::nbd {

struct Job {
  Job* next = nullptr;  // in the session's queue
  Request req;
  std::uint8_t* data = nullptr;  // on demand: the WRITE payload (owned); else the piece
  std::uint32_t error = 0;       // validation's error, or the result of a WRITE already run
  bool done = false;             // executed already (a long WRITE): reply only
  bool inline_run = false;       // run by the reader itself (Session::run_inline)
  std::size_t cost = 0;          // on demand: bytes charged to the in-flight budget
  std::chrono::steady_clock::time_point start;  // its header was read (latency from here)
};

class Session {
 public:
  Session(int fd, Transport& t, Backend& b, const Negotiated& n, const LogFn& log,
          const SessionOptions& o) noexcept
      : fd_(fd), t_(t), backend_(b), neg_(n), log_(log), opt_(o) {}
  void run() noexcept;

 private:
  // ---- session.cc ----
  bool start_pool() noexcept;
  void read_loop() noexcept;
  // A job for the request, its memory and budget taken (waits for them); nullptr (logged)
  // when memory ran out.
  Job* obtain(const Request& r, const Verdict& v,
              std::chrono::steady_clock::time_point start) noexcept;
  // Reads (or skips) a WRITE's payload; a long one (preallocated) is written as it comes.
  // False when the client vanished or memory ran out (logged).
  bool take_payload(Job* job, const Verdict& v) noexcept;
  bool write_in_pieces(Job* job) noexcept;
  void enqueue(Job* job) noexcept;
  // Whether the reader runs this request itself instead of queueing it (session.cc).
  bool run_inline(const Job* job) noexcept;
  // The reader, before an inline request's reply: more input already waiting ends the streak.
  void pipelined(const Job& job) noexcept;
  // Executes (unless the session is dead), counts, replies and releases a job.
  void run_job(Job* job, bool queued) noexcept;
  void release(Job* job, bool queued) noexcept;
  void acquire_budget(std::size_t n) noexcept;
  void work() noexcept;
  // Run one request and send its reply; return the error replied (0: success).
  std::uint32_t execute(Job& job) noexcept;
  std::uint32_t execute_read(const Job& job) noexcept;
  std::uint32_t execute_block_status(const Request& r, std::uint8_t* piece) noexcept;
  bool pooled() const noexcept { return pool_.ready(); }
  // On demand: a data buffer of n bytes (nullptr when memory is short), and back.
  // put_buffer is called while the request still counts in in_flight_.
  std::uint8_t* get_buffer(std::size_t n) noexcept;
  void put_buffer(std::uint8_t* p, std::size_t n) noexcept;
  void unmap_drained(std::uint8_t* const* bufs, const std::size_t* sizes, std::size_t n) noexcept;

  // ---- session_reply.cc ----
  void send(iovec* v, int n) noexcept;
  void send_locked(iovec* v, int n) noexcept ZS_REQUIRES(send_mu_);
  void kill_locked() noexcept ZS_REQUIRES(send_mu_);
  void send_ok(const Request& r) noexcept;
  void send_error(const Request& r, std::uint32_t error) noexcept;
  void send_read(const Request& r, std::uint8_t* buf) noexcept;
  bool send_read_with_holes(const Request& r, const std::uint8_t* buf) noexcept;
  // A READ longer than a piece: the first `first` bytes are in `piece` already.
  void send_read_in_pieces(const Request& r, std::uint8_t* piece, std::uint32_t first) noexcept;
  void send_extents(const Request& r, Extent* extents, std::size_t n) noexcept;

  const int fd_;
  Transport& t_;
  Backend& backend_;
  const Negotiated neg_;
  const LogFn& log_;
  const SessionOptions opt_;
  // Protects the queue, in_flight_, busy_, closing_ and pool_'s free lists. A leaf: nothing is
  // locked under it. Level: nbd_queue.
  Mutex mu_{LockLevel::nbd_queue, "nbd_queue"};
  CondVar cv_, budget_cv_;
  Job* head_ ZS_GUARDED_BY(mu_) = nullptr;  // the queue, oldest first; owned
  Job* tail_ ZS_GUARDED_BY(mu_) = nullptr;
  std::size_t in_flight_ ZS_GUARDED_BY(mu_) = 0;
  // Jobs queued or being run by a worker (not those the reader runs itself).
  unsigned busy_ ZS_GUARDED_BY(mu_) = 0;
  // The reader's own: how many requests (at most kInlineStreak) arrived with busy_ 0 and no
  // more input waiting since more input last waited (run_inline, pipelined).
  unsigned idle_streak_ = 0;
  // On demand: mapped data buffers kept for the next requests while some are in flight
  // (unmapped when in_flight_ drops to 0).
  IoBufferCache buffers_ ZS_GUARDED_BY(mu_);
  bool closing_ ZS_GUARDED_BY(mu_) = false;
  // ready() only with SessionOptions::preallocate; set before the workers start and read
  // without the lock (pooled()); its free lists are taken and given back under mu_.
  RequestPool pool_;
  // Serialises replies (a reply is written whole). Taken alone: never with mu_.
  // Level: nbd_send.
  Mutex send_mu_{LockLevel::nbd_send, "nbd_send"};
  // A reply could not be sent (the client is gone, or read nothing for the send timeout):
  // the reader stops taking requests and the workers drop the queued ones instead of
  // executing them for nobody. Set under send_mu_; read anywhere (relaxed: a hint that
  // only makes threads stop sooner; the socket is shut down as well).
  std::atomic<bool> dead_{false};
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_SESSION_IMPL_H_
