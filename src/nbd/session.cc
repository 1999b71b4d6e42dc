// nbd/session.cc - transmission: request parsing, dispatch to workers, simple and
// structured replies. Nothing here throws: threads, jobs and reply buffers are obtained
// without exceptions, and running out of them closes this connection (logged) or fails
// the one request with ENOMEM.
#include "nbd/session.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "nbd/store_backend.h"
#include "nbd/transport.h"
#include "util/thread.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kMaxExtents = 1U << 16;
constexpr std::size_t kJobCost = 4096;  // charged per queued request, beyond its data
constexpr unsigned kMaxWorkers = 256;   // per connection (`uzram serve -t` allows 1-256)

struct Job {
  Job* next = nullptr;  // in the session's queue
  Request req;
  std::unique_ptr<std::uint8_t[]> payload;  // WRITE data (not zero-filled)
  std::uint32_t error = 0;            // pre-validated error: reply only
  std::size_t cost = 0;               // bytes charged to the in-flight budget
};

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
        logf(log_, "cannot start worker thread %u of %u: %s", started + 1, want, std::strerror(e));
        break;
      }
    }
    if (started == 0) {
      logf(log_, "no worker thread for this connection; closing it");
    } else {
      read_loop();
    }
    {
      std::lock_guard l(mu_);
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
          job->payload.reset(new (std::nothrow) std::uint8_t[job->req.length]);
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
        std::lock_guard l(mu_);
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
    std::unique_lock l(mu_);
    budget_cv_.wait(l, [&] { return in_flight_ == 0 || in_flight_ + n <= opt_.max_in_flight_bytes; });
    in_flight_ += n;
  }
  void release(std::size_t n) {
    {
      std::lock_guard l(mu_);
      in_flight_ -= n;
    }
    budget_cv_.notify_all();
  }

  void work() noexcept {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock l(mu_);
        cv_.wait(l, [&] { return closing_ || head_ != nullptr; });
        if (head_ == nullptr) return;
        job.reset(head_);
        head_ = head_->next;
        if (head_ == nullptr) tail_ = nullptr;
      }
      if (!dead_.load(std::memory_order_relaxed)) execute(*job);
      release(job->cost);
    }
  }

  void execute(Job& job) {
    const Request& r = job.req;
    if (job.error) {
      send_error(r, job.error);
      return;
    }
    std::uint32_t e = 0;
    switch (r.type) {
      case kCmdRead: {
        std::unique_ptr<std::uint8_t[]> buf(new (std::nothrow) std::uint8_t[r.length]);
        e = buf ? backend_.read(r.offset, r.length, buf.get()) : kEnomem;
        if (e) break;
        send_read(r, buf.get());
        return;
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
        std::unique_ptr<Extent[]> extents(new (std::nothrow) Extent[max]);
        std::size_t n = 0;
        e = extents ? backend_.block_status(r.offset, r.length, extents.get(), max, &n) : kEnomem;
        if (e || n == 0) break;
        send_extents(r, extents.get(), n);
        return;
      }
      default:
        e = kEinval;
    }
    if (e) {
      send_error(r, e);
    } else {
      send_ok(r);
    }
  }

  void send(iovec* v, int n) {
    std::lock_guard l(send_mu_);
    send_locked(v, n);
  }

  // Caller holds send_mu_.
  void send_locked(iovec* v, int n) {
    if (dead_.load(std::memory_order_relaxed)) return;
    if (!t_.writev_full(v, n)) {
      dead_.store(true, std::memory_order_relaxed);
      ::shutdown(fd_, SHUT_RDWR);  // the reader sees EOF and the session ends
    }
  }

  void chunk_header(std::uint8_t* h, const Request& r, std::uint16_t type, std::uint32_t len,
                    std::uint16_t flags = kChunkFlagDone) {
    put32(h, kStructuredReplyMagic);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, r.cookie);
    put32(h + 16, len);
  }

  void simple_header(std::uint8_t* h, const Request& r, std::uint32_t error) {
    put32(h, kSimpleReplyMagic);
    put32(h + 4, error);
    put64(h + 8, r.cookie);
  }

  void send_ok(const Request& r) {
    std::uint8_t h[kChunkHeaderSize];
    if (neg_.structured) {
      chunk_header(h, r, kChunkNone, 0);
      iovec v{h, kChunkHeaderSize};
      send(&v, 1);
    } else {
      simple_header(h, r, 0);
      iovec v{h, kSimpleReplySize};
      send(&v, 1);
    }
  }

  void send_error(const Request& r, std::uint32_t error) {
    std::uint8_t h[kChunkHeaderSize + 6];
    if (neg_.structured) {
      chunk_header(h, r, kChunkError, 6);
      put32(h + kChunkHeaderSize, error);
      put16(h + kChunkHeaderSize + 4, 0);
      iovec v{h, sizeof h};
      send(&v, 1);
    } else {
      simple_header(h, r, error);
      iovec v{h, kSimpleReplySize};
      send(&v, 1);
    }
  }

  void send_read(const Request& r, std::uint8_t* buf) {
    std::uint8_t h[kChunkHeaderSize + 8];
    if (neg_.structured && !(r.flags & kCmdFlagDf) && send_read_with_holes(r, buf)) return;
    if (neg_.structured) {
      chunk_header(h, r, kChunkOffsetData, 8 + r.length);
      put64(h + kChunkHeaderSize, r.offset);
      iovec v[2] = {{h, sizeof h}, {buf, r.length}};
      send(v, 2);
    } else {
      simple_header(h, r, 0);
      iovec v[2] = {{h, kSimpleReplySize}, {buf, r.length}};
      send(v, 2);
    }
  }

  // A structured READ reply whose zero runs (whole 4 KiB blocks, at least kMinHole bytes
  // together) go as OFFSET_HOLE chunks and the rest as OFFSET_DATA chunks; the last chunk
  // carries DONE. Returns false (nothing sent) when the data has no such run: the caller
  // then sends one data chunk. The chunks go out under one hold of the send lock.
  bool send_read_with_holes(const Request& r, const std::uint8_t* buf) {
    static constexpr std::uint32_t kBlock = 4096, kMinHole = 64 << 10;
    static constexpr std::size_t kMaxIov = 512;  // per writev, below IOV_MAX
    struct Seg {
      std::uint32_t off, len;  // within the request
      bool hole;
    };
    // Each hole is at least kMinHole long and has at most one data segment before it.
    const std::size_t max_segs = 2 * (r.length / kMinHole) + 2;
    std::unique_ptr<Seg[]> segs(new (std::nothrow) Seg[max_segs]);
    std::unique_ptr<std::array<std::uint8_t, kChunkHeaderSize + 12>[]> hdrs(
        new (std::nothrow) std::array<std::uint8_t, kChunkHeaderSize + 12>[max_segs]);
    std::unique_ptr<iovec[]> v(new (std::nothrow) iovec[2 * max_segs]);
    if (!segs || !hdrs || !v) return false;  // no memory: one data chunk instead
    std::size_t nsegs = 0, nv = 0;
    std::uint32_t data_from = 0;  // start of the pending data segment
    const std::uint32_t first = static_cast<std::uint32_t>(-r.offset & (kBlock - 1));
    for (std::uint32_t b = first; b + kBlock <= r.length;) {
      std::uint32_t e = b;
      while (e + kBlock <= r.length && all_zero(buf + e, kBlock)) e += kBlock;
      if (e - b >= kMinHole) {
        if (b > data_from) segs[nsegs++] = {data_from, b - data_from, false};
        segs[nsegs++] = {b, e - b, true};
        data_from = e;
      }
      b = e == b ? b + kBlock : e;
    }
    if (nsegs == 0) return false;
    if (data_from < r.length) segs[nsegs++] = {data_from, r.length - data_from, false};
    for (std::size_t i = 0; i < nsegs; i++) {
      const Seg& s = segs[i];
      const std::uint16_t flags = i + 1 == nsegs ? kChunkFlagDone : 0;
      std::uint8_t* h = hdrs[i].data();
      if (s.hole) {
        chunk_header(h, r, kChunkOffsetHole, 12, flags);
        put64(h + kChunkHeaderSize, r.offset + s.off);
        put32(h + kChunkHeaderSize + 8, s.len);
        v[nv++] = {h, kChunkHeaderSize + 12};
      } else {
        chunk_header(h, r, kChunkOffsetData, 8 + s.len, flags);
        put64(h + kChunkHeaderSize, r.offset + s.off);
        v[nv++] = {h, kChunkHeaderSize + 8};
        v[nv++] = {const_cast<std::uint8_t*>(buf) + s.off, s.len};
      }
    }
    std::lock_guard l(send_mu_);  // one hold: a chunk's header and data are never split
    for (std::size_t i = 0; i < nv; i += kMaxIov) {
      send_locked(&v[i], static_cast<int>(std::min(kMaxIov, nv - i)));
    }
    return true;
  }

  // n is a multiple of 64. Data blocks usually differ from zero in their first line, so
  // the check stops at the first non-zero 64 bytes.
  static bool all_zero(const std::uint8_t* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; i += 64) {
      std::uint64_t w[8];
      std::memcpy(w, p + i, sizeof w);
      if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
    }
    return true;
  }

  // The extents are rewritten in place into their wire form (two big-endian u32 each).
  void send_extents(const Request& r, Extent* extents, std::size_t n) {
    std::uint8_t h[kChunkHeaderSize + 4];
    chunk_header(h, r, kChunkBlockStatus, static_cast<std::uint32_t>(4 + 8 * n));
    put32(h + kChunkHeaderSize, kBaseAllocationId);
    for (std::size_t i = 0; i < n; i++) {
      const Extent x = extents[i];
      auto* p = reinterpret_cast<std::uint8_t*>(&extents[i]);
      put32(p, x.length);
      put32(p + 4, x.flags);
    }
    iovec v[2] = {{h, sizeof h}, {extents, 8 * n}};
    send(v, 2);
  }

  const int fd_;
  Transport& t_;
  Backend& backend_;
  const Negotiated neg_;
  const LogFn& log_;
  const SessionOptions opt_;
  // Protects the queue, in_flight_ and closing_. A leaf: nothing is locked under it.
  std::mutex mu_;
  std::condition_variable cv_, budget_cv_;
  Job* head_ = nullptr;  // the queue, oldest first; owned
  Job* tail_ = nullptr;
  std::size_t in_flight_ = 0;
  bool closing_ = false;
  // Serialises replies (a reply is written whole). Taken alone: never with mu_.
  std::mutex send_mu_;
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
