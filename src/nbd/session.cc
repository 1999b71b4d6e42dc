// nbd/session.cc - transmission: request parsing, dispatch to workers, and sending the
// replies protocol.h encodes (simple or structured). Nothing here throws: threads, jobs and
// reply buffers are obtained without exceptions, and running out of them closes this
// connection (logged) or fails the one request with ENOMEM.
#include "nbd/session.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>

#include "nbd/stats.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "sync/mutex.h"
#include "util/thread.h"
#include "util/errno_text.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kMaxExtents = 1U << 16;
constexpr std::size_t kJobCost = 4096;  // charged per queued request, beyond its data
constexpr unsigned kMaxWorkers = 256;   // per connection (`uzram serve -t` allows 1-256)

using Clock = std::chrono::steady_clock;

struct Job {
  Job* next = nullptr;  // in the session's queue
  Request req;
  CountedArray<std::uint8_t> payload;  // WRITE data (not zero-filled)
  std::uint32_t error = 0;             // pre-validated error: reply only
  std::size_t cost = 0;                // bytes charged to the in-flight budget
  Clock::time_point start;             // its header was read (latency counts from here)
};

StatCmd stat_cmd(std::uint16_t type) noexcept {
  switch (type) {
    case kCmdRead: return StatCmd::read;
    case kCmdWrite: return StatCmd::write;
    case kCmdFlush: return StatCmd::flush;
    case kCmdTrim: return StatCmd::trim;
    case kCmdWriteZeroes: return StatCmd::write_zeroes;
    case kCmdBlockStatus: return StatCmd::block_status;
    case kCmdCache: return StatCmd::cache;
    default: return StatCmd::other;
  }
}

// The bytes a request moves or covers: READ/WRITE payloads, TRIM/WRITE_ZEROES ranges.
std::uint64_t stat_bytes(const Request& r) noexcept {
  switch (r.type) {
    case kCmdRead:
    case kCmdWrite:
    case kCmdTrim:
    case kCmdWriteZeroes: return r.length;
    default: return 0;
  }
}

class Session {
 public:
  Session(int fd, Transport& t, Backend& b, const Negotiated& n, const LogFn& log, const SessionOptions& o)
      : fd_(fd), t_(t), backend_(b), neg_(n), log_(log), opt_(o) {}

  void run() {
    const unsigned want = backend_.parallel() ? std::clamp(opt_.workers, 1u, kMaxWorkers) : 1u;
    Thread workers[kMaxWorkers];
    unsigned started = 0;
    for (; started < want; started++) {
      if (const int e = workers[started].start([this]() noexcept { work(); }); e != 0) {
        logf(log_, "cannot start worker thread %u of %u: %s", started + 1, want, errno_text(e));
        break;
      }
    }
    if (started == 0) {
      logf(log_, "no worker thread for this connection; closing it");
    } else {
      read_loop();
    }
    {
      MutexLock l(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    for (unsigned i = 0; i < started; i++) workers[i].join();
  }

 private:
  void read_loop() {
    for (;;) {
      std::uint8_t h[kRequestSize];
      if (dead_.load(std::memory_order_relaxed)) return;
      if (!t_.read_full(h, sizeof h)) return;  // EOF, error or server shutdown
      std::unique_ptr<Job> job(new (std::nothrow) Job);
      if (!job) {
        logf(log_, "out of memory for a request; closing the connection");
        return;
      }
      job->start = Clock::now();
      job->req = decode_request(h);
      if (job->req.magic != kRequestMagic) {
        logf(log_, "bad request magic; closing the connection");
        return;
      }
      const Verdict v = validate(job->req, neg_);
      if (v.disconnect) return;
      job->error = v.error;
      // Every queued request is charged against the in-flight budget (its buffer, or what
      // its reply may take), so a client that never reads replies cannot grow the queue.
      job->cost = kJobCost;
      if (!v.error && (job->req.type == kCmdRead || job->req.type == kCmdWrite))
        job->cost += job->req.length;
      if (!v.error && job->req.type == kCmdBlockStatus) job->cost += 8 * kMaxExtents;
      if (v.payload_follows) {
        if (v.error) {
          if (!t_.skip_full(job->req.length)) return;
          acquire(job->cost);
        } else {
          acquire(job->cost);
          job->payload = CountedArray<std::uint8_t>(opt_.stats, job->req.length);
          if (!job->payload) {
            logf(log_, "out of memory for a write payload; closing the connection");
            release(job->cost);
            return;
          }
          if (!t_.read_full(job->payload.get(), job->req.length)) {
            logf(log_, "client vanished in the middle of a write payload");
            release(job->cost);
            return;
          }
        }
      } else {
        acquire(job->cost);
      }
      {
        MutexLock l(mu_);
        Job* j = job.release();
        (tail_ ? tail_->next : head_) = j;
        tail_ = j;
      }
      cv_.notify_one();
    }
  }

  // Waits until n more bytes fit in the in-flight budget (or nothing is in flight), then
  // charges them.
  void acquire(std::size_t n) {
    MutexLock l(mu_);
    while (in_flight_ != 0 && in_flight_ + n > opt_.max_in_flight_bytes) budget_cv_.wait(mu_);
    in_flight_ += n;
  }
  void release(std::size_t n) {
    {
      MutexLock l(mu_);
      in_flight_ -= n;
    }
    budget_cv_.notify_all();
  }

  void work() noexcept {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        MutexLock l(mu_);
        while (!closing_ && head_ == nullptr) cv_.wait(mu_);
        if (head_ == nullptr) return;
        job.reset(head_);
        head_ = head_->next;
        if (head_ == nullptr) tail_ = nullptr;
      }
      if (!dead_.load(std::memory_order_relaxed)) {
        const std::uint32_t e = execute(*job);
        if (opt_.stats) {
          opt_.stats->request_done(stat_cmd(job->req.type), e ? 0 : stat_bytes(job->req), e != 0,
                                   Clock::now() - job->start);
        }
      }
      job->payload.reset();
      release(job->cost);
    }
  }

  // Runs one request and sends its reply; returns the error replied (0: success).
  std::uint32_t execute(Job& job) {
    const Request& r = job.req;
    if (job.error) {
      send_error(r, job.error);
      return job.error;
    }
    std::uint32_t e = 0;
    switch (r.type) {
      case kCmdRead: {
        CountedArray<std::uint8_t> buf(opt_.stats, r.length);
        e = buf ? backend_.read(r.offset, r.length, buf.get()) : kEnomem;
        if (e) break;
        send_read(r, buf.get());
        return 0;
      }
      case kCmdWrite:
        e = backend_.write(r.offset, r.length, job.payload.get());
        if (!e && (r.flags & kCmdFlagFua)) e = backend_.flush();
        break;
      case kCmdFlush:
        e = backend_.flush();
        break;
      case kCmdTrim:
        e = backend_.trim(r.offset, r.length);
        break;
      case kCmdWriteZeroes:
        e = backend_.zero(r.offset, r.length, (r.flags & kCmdFlagNoHole) != 0);
        break;
      case kCmdCache:
        break;
      case kCmdBlockStatus: {
        const std::size_t max = (r.flags & kCmdFlagReqOne) ? 1 : kMaxExtents;
        CountedArray<Extent> extents(opt_.stats, max);
        std::size_t n = 0;
        e = extents ? backend_.block_status(r.offset, r.length, extents.get(), max, &n) : kEnomem;
        if (e || n == 0) break;
        send_extents(r, extents.get(), n);
        return 0;
      }
      default:
        e = kEinval;
    }
    if (e) {
      send_error(r, e);
    } else {
      send_ok(r);
    }
    return e;
  }

  void send(iovec* v, int n) {
    MutexLock l(send_mu_);
    send_locked(v, n);
  }

  void send_locked(iovec* v, int n) ZS_REQUIRES(send_mu_) {
    if (dead_.load(std::memory_order_relaxed)) return;
    if (!t_.writev_full(v, n)) {
      dead_.store(true, std::memory_order_relaxed);
      ::shutdown(fd_, SHUT_RDWR);  // the reader sees EOF and the session ends
    }
  }

  // Replies: encoded by protocol.h, sent whole under send_mu_.
  void send_ok(const Request& r) {
    std::uint8_t h[kChunkHeaderSize];
    iovec v{h, kSimpleReplySize};
    if (neg_.structured) {
      encode_chunk_header(h, r.cookie, kChunkNone, 0);
      v.iov_len = kChunkHeaderSize;
    } else {
      encode_simple_reply(h, r.cookie, 0);
    }
    send(&v, 1);
  }

  void send_error(const Request& r, std::uint32_t error) {
    std::uint8_t h[kErrorChunkSize];
    iovec v{h, kSimpleReplySize};
    if (neg_.structured) {
      encode_error_chunk(h, r.cookie, error);
      v.iov_len = kErrorChunkSize;
    } else {
      encode_simple_reply(h, r.cookie, error);
    }
    send(&v, 1);
  }

  void send_read(const Request& r, std::uint8_t* buf) {
    if (neg_.structured && !(r.flags & kCmdFlagDf) && send_read_with_holes(r, buf)) return;
    std::uint8_t h[kDataChunkHeaderSize];
    iovec v[2] = {{h, kSimpleReplySize}, {buf, r.length}};
    if (neg_.structured) {
      encode_data_chunk_header(h, r.cookie, r.offset, r.length, kChunkFlagDone);
      v[0].iov_len = kDataChunkHeaderSize;
    } else {
      encode_simple_reply(h, r.cookie, 0);
    }
    send(v, 2);
  }

  // A structured READ reply in DATA and HOLE chunks (split_read). Returns false (nothing
  // sent) when the data has no hole, or no memory for the chunks: the caller then sends
  // one data chunk. The chunks go out under one hold of the send lock.
  bool send_read_with_holes(const Request& r, const std::uint8_t* buf) {
    static constexpr std::size_t kMaxIov = 512;  // per writev, below IOV_MAX
    static constexpr std::size_t kHeaderMax = std::max(kHoleChunkSize, kDataChunkHeaderSize);
    const std::size_t max_chunks = max_read_chunks(r.length);
    CountedArray<ReadChunk> chunks(opt_.stats, max_chunks);
    CountedArray<std::array<std::uint8_t, kHeaderMax>> hdrs(opt_.stats, max_chunks);
    CountedArray<iovec> v(opt_.stats, 2 * max_chunks);
    if (!chunks || !hdrs || !v) return false;  // no memory: one data chunk instead
    const std::size_t n = split_read(r.offset, buf, r.length, chunks.get());
    if (n == 0) return false;
    std::size_t nv = 0;
    for (std::size_t i = 0; i < n; i++) {
      const ReadChunk& c = chunks[i];
      const std::uint16_t flags = i + 1 == n ? kChunkFlagDone : 0;
      std::uint8_t* h = hdrs[i].data();
      if (c.hole) {
        encode_hole_chunk(h, r.cookie, r.offset + c.offset, c.length, flags);
        v[nv++] = {h, kHoleChunkSize};
      } else {
        encode_data_chunk_header(h, r.cookie, r.offset + c.offset, c.length, flags);
        v[nv++] = {h, kDataChunkHeaderSize};
        v[nv++] = {const_cast<std::uint8_t*>(buf) + c.offset, c.length};
      }
    }
    MutexLock l(send_mu_);  // one hold: a chunk's header and data are never split
    for (std::size_t i = 0; i < nv; i += kMaxIov) {
      send_locked(&v.get()[i], static_cast<int>(std::min(kMaxIov, nv - i)));
    }
    return true;
  }

  // The extents are rewritten in place into their wire form.
  void send_extents(const Request& r, Extent* extents, std::size_t n) {
    std::uint8_t h[kBlockStatusHeaderSize];
    encode_block_status_header(h, r.cookie, n);
    for (std::size_t i = 0; i < n; i++) {
      const Extent x = extents[i];
      encode_extent(reinterpret_cast<std::uint8_t*>(&extents[i]), x.length, x.flags);
    }
    iovec v[2] = {{h, sizeof h}, {extents, kExtentSize * n}};
    send(v, 2);
  }

  const int fd_;
  Transport& t_;
  Backend& backend_;
  const Negotiated neg_;
  const LogFn& log_;
  const SessionOptions opt_;
  // Protects the queue, in_flight_ and closing_. A leaf: nothing is locked under it.
  // Level: nbd_queue.
  Mutex mu_{LockLevel::nbd_queue, "nbd_queue"};
  CondVar cv_, budget_cv_;
  Job* head_ ZS_GUARDED_BY(mu_) = nullptr;  // the queue, oldest first; owned
  Job* tail_ ZS_GUARDED_BY(mu_) = nullptr;
  std::size_t in_flight_ ZS_GUARDED_BY(mu_) = 0;
  bool closing_ ZS_GUARDED_BY(mu_) = false;
  // Serialises replies (a reply is written whole). Taken alone: never with mu_.
  // Level: nbd_send.
  Mutex send_mu_{LockLevel::nbd_send, "nbd_send"};
  // A reply could not be sent (the client is gone, or read nothing for the send timeout):
  // the reader stops taking requests and the workers drop the queued ones instead of
  // executing them for nobody. Set under send_mu_; read anywhere (relaxed: a hint that
  // only makes threads stop sooner; the socket is shut down as well).
  std::atomic<bool> dead_{false};
};

}  // namespace

void serve_session(int fd, Transport& transport, Backend& backend, const Negotiated& neg,
                   const LogFn& log, const SessionOptions& options) noexcept {
  Session(fd, transport, backend, neg, log, options).run();
}

}  // namespace uzram::nbd
