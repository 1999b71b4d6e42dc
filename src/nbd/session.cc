// nbd/session.cc - transmission: request parsing, dispatch to workers, execution, and the
// memory of requests in flight (session_impl.h says where it comes from). Nothing here
// throws: threads, jobs and buffers are obtained without exceptions, and running out of
// them closes this connection (logged) or fails the one request with ENOMEM.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "nbd/session_impl.h"
#include "nbd/transport.h"
#include "util/check.h"
#include "util/errno_text.h"
#include "util/thread.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kMaxExtents = 1U << 16;
constexpr std::size_t kJobCost = 4096;  // charged per queued request, beyond its data
constexpr unsigned kMaxWorkers = 256;   // per connection (`uzram serve -t` allows 1-256)
// The largest request run_inline runs: a reply the socket's send buffer takes at once, so
// the reader never blocks in a send while a client that stopped reading sends on.
constexpr std::uint32_t kInlineMaxBytes = 64 << 10;
constexpr unsigned kInlineStreak = 4;  // arrivals at an idle session before run_inline runs one

using Clock = std::chrono::steady_clock;

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

std::size_t pieces_of(const SessionOptions& o) noexcept {
  return std::max<std::size_t>(1, o.max_in_flight_bytes / o.piece_bytes);
}

}  // namespace

std::size_t preallocated_bytes(const SessionOptions& o) noexcept {
  return pieces_of(o) * o.piece_bytes + o.max_jobs * (sizeof(Job) + 4) + pieces_of(o) * 4 + 4096;
}

void Session::run() noexcept {
  if (opt_.preallocate && !start_pool()) return;
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
  if (pooled() && opt_.stats) opt_.stats->buffers_freed(preallocated_bytes(opt_));
  std::uint8_t* bufs[kCacheEntries];
  std::size_t sizes[kCacheEntries];
  std::size_t n;
  {
    MutexLock l(mu_);
    n = buffers_.drain(bufs, sizes);
  }
  unmap_drained(bufs, sizes, n);
}

std::uint8_t* Session::get_buffer(std::size_t n) noexcept {
  if (n >= kMapThreshold) {
    MutexLock l(mu_);
    if (std::uint8_t* p = buffers_.take(n)) return p;
  }
  return map_buffer(n, opt_.stats);
}

void Session::put_buffer(std::uint8_t* p, std::size_t n) noexcept {
  if (p && n >= kMapThreshold) {
    MutexLock l(mu_);
    if (in_flight_ > 0 && buffers_.keep(p, n)) return;
  }
  unmap_buffer(p, n, opt_.stats);
}

void Session::unmap_drained(std::uint8_t* const* bufs, const std::size_t* sizes,
                            std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i++) unmap_buffer(bufs[i], sizes[i], opt_.stats);
}

bool Session::start_pool() noexcept {
  ZS_CHECK(opt_.piece_bytes >= 4096 && opt_.piece_bytes <= kMaxPiece &&
               opt_.piece_bytes % 4096 == 0 && opt_.max_jobs > 0,
           "SessionOptions: piece_bytes %zu, max_jobs %zu", opt_.piece_bytes, opt_.max_jobs);
  if (!pool_.init(opt_.max_jobs, sizeof(Job), pieces_of(opt_), opt_.piece_bytes)) {
    logf(log_, "no memory for the connection's %zu MiB of buffers; closing it",
         preallocated_bytes(opt_) >> 20);
    return false;
  }
  if (opt_.stats) opt_.stats->buffers_allocated(preallocated_bytes(opt_));
  return true;
}

void Session::read_loop() noexcept {
  for (;;) {
    std::uint8_t h[kRequestSize];
    if (dead_.load(std::memory_order_relaxed)) return;
    if (!t_.read_full(h, sizeof h)) return;  // EOF, error or server shutdown
    const Clock::time_point start = Clock::now();
    const Request r = decode_request(h);
    if (r.magic != kRequestMagic) {
      logf(log_, "bad request magic; closing the connection");
      return;
    }
    const Verdict v = validate(r, neg_);
    if (v.disconnect) return;
    if (v.payload_follows && v.error && !t_.skip_full(r.length)) return;
    Job* job = obtain(r, v, start);
    if (job == nullptr) return;
    if (v.payload_follows && !v.error && !take_payload(job, v)) {
      release(job, false);
      return;
    }
    if (run_inline(job)) {
      job->inline_run = true;  // execute() looks for more input before the reply (pipelined)
      run_job(job, false);
    } else {
      enqueue(job);
    }
  }
}

// The reader runs a READ or WRITE itself when nothing else is queued or running and the
// client sent nothing more, and kInlineStreak requests arrived so since more input last
// waited: the client waits for each reply before it sends the next (iodepth 1), and handing
// every request to a worker would cost a thread wake-up and a context switch each. A
// request that arrives meanwhile waits in the socket for this one. A client that keeps
// requests in flight keeps its workers. (A worker counts its job done after the reply is
// sent, so a client at iodepth 1 may find it still busy: that only skips this request.)
// In step (the streak complete) the reader does not look at the socket here: input that
// waits now still waits when the inline request's reply is about to go out, and
// pipelined() sees it there, one request later.
bool Session::run_inline(const Job* job) noexcept {
  if (idle_streak_ < kInlineStreak && t_.input_pending()) {
    idle_streak_ = 0;
    return false;
  }
  {
    MutexLock l(mu_);
    if (busy_ != 0) return false;
  }
  if (idle_streak_ < kInlineStreak) idle_streak_++;
  const Request& r = job->req;
  return idle_streak_ == kInlineStreak && !job->error && !job->done &&
         (r.type == kCmdRead || r.type == kCmdWrite) && r.length <= kInlineMaxBytes;
}

// Called by the reader for a request it runs itself, just before its reply is sent: input
// that waits now was sent before the client had this reply, so the client keeps more than
// one request in flight, and the workers take its requests until it is idle again. (After
// the reply, a client at iodepth 1 may already have sent its next request: looking then
// sent such a client back to the workers whenever it was quick.)
void Session::pipelined(const Job& job) noexcept {
  if (job.inline_run && t_.input_pending()) idle_streak_ = 0;
}

void Session::run_job(Job* job, bool queued) noexcept {
  if (!dead_.load(std::memory_order_relaxed)) {
    const std::uint32_t e = execute(*job);
    if (opt_.stats) {
      opt_.stats->request_done(stat_cmd(job->req.type), e ? 0 : stat_bytes(job->req), e != 0,
                               Clock::now() - job->start);
    }
  }
  release(job, queued);
}

// Every queued request is charged (its buffer, or what its reply may take), so a client
// that never reads replies cannot grow the queue: on demand against the in-flight budget,
// preallocated by the slots and pieces there are.
Job* Session::obtain(const Request& r, const Verdict& v, Clock::time_point start) noexcept {
  const bool data =
      !v.error && (r.type == kCmdRead || r.type == kCmdWrite || r.type == kCmdBlockStatus);
  Job* job;
  if (pooled()) {
    MutexLock l(mu_);
    while (!(pool_.has_job() && (!data || pool_.has_piece()))) budget_cv_.wait(mu_);
    job = new (pool_.take_job()) Job;
    if (data) job->data = pool_.take_piece();
  } else {
    job = new (std::nothrow) Job;
    if (!job) {
      logf(log_, "out of memory for a request; closing the connection");
      return nullptr;
    }
    job->cost = kJobCost;
    if (!v.error && (r.type == kCmdRead || r.type == kCmdWrite)) job->cost += r.length;
    if (!v.error && r.type == kCmdBlockStatus) job->cost += 8 * kMaxExtents;
    acquire_budget(job->cost);
  }
  job->req = r;
  job->error = v.error;
  job->start = start;
  return job;
}

bool Session::take_payload(Job* job, const Verdict&) noexcept {
  const Request& r = job->req;
  if (pooled() && r.length > pool_.piece_bytes()) return write_in_pieces(job);
  if (!pooled()) {
    job->data = get_buffer(r.length);
    if (!job->data) {
      logf(log_, "out of memory for a write payload; closing the connection");
      return false;
    }
  }
  if (!t_.read_full(job->data, r.length)) {
    logf(log_, "client vanished in the middle of a write payload");
    return false;
  }
  return true;
}

// A WRITE longer than a piece, run by the reader as its payload arrives (the rest of the
// payload is still read after an error, to stay in step with the stream). The piece goes
// back before the job is queued for its reply.
bool Session::write_in_pieces(Job* job) noexcept {
  const Request& r = job->req;
  const std::size_t piece = pool_.piece_bytes();
  std::uint32_t e = 0;
  for (std::uint32_t done = 0; done < r.length;) {
    const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(piece, r.length - done));
    if (!t_.read_full(job->data, n)) {
      logf(log_, "client vanished in the middle of a write payload");
      return false;
    }
    if (e == 0 && !dead_.load(std::memory_order_relaxed)) {
      e = backend_.write(r.offset + done, n, job->data);
    }
    done += n;
  }
  if (e == 0 && (r.flags & kCmdFlagFua)) e = backend_.flush();
  job->error = e;
  job->done = true;
  {
    MutexLock l(mu_);
    pool_.put_piece(job->data);
  }
  budget_cv_.notify_all();
  job->data = nullptr;
  return true;
}

void Session::enqueue(Job* job) noexcept {
  {
    MutexLock l(mu_);
    (tail_ ? tail_->next : head_) = job;
    tail_ = job;
    busy_++;
  }
  cv_.notify_one();
}

// Returns a job's memory (and budget); `queued`: it went through the queue (busy_).
void Session::release(Job* job, bool queued) noexcept {
  if (pooled()) {
    {
      MutexLock l(mu_);
      if (queued) busy_--;
      if (job->data) pool_.put_piece(job->data);
      job->~Job();
      pool_.put_job(job);
    }
    budget_cv_.notify_all();
    return;
  }
  const std::size_t cost = job->cost;
  std::uint8_t* data = job->data;  // a WRITE's payload
  const std::size_t len = job->req.length;
  delete job;
  bool kept = false;
  std::uint8_t* bufs[kCacheEntries];
  std::size_t sizes[kCacheEntries];
  std::size_t n = 0;
  {
    MutexLock l(mu_);
    if (queued) busy_--;
    in_flight_ -= cost;
    if (data && len >= kMapThreshold && in_flight_ > 0) kept = buffers_.keep(data, len);
    if (in_flight_ == 0) n = buffers_.drain(bufs, sizes);  // the burst is over
  }
  budget_cv_.notify_all();
  if (data && !kept) unmap_buffer(data, len, opt_.stats);
  unmap_drained(bufs, sizes, n);
}

// Waits until n more bytes fit in the in-flight budget (or nothing is in flight), then
// charges them.
void Session::acquire_budget(std::size_t n) noexcept {
  MutexLock l(mu_);
  while (!(in_flight_ == 0 || in_flight_ + n <= opt_.max_in_flight_bytes)) budget_cv_.wait(mu_);
  in_flight_ += n;
}

void Session::work() noexcept {
  for (;;) {
    Job* job;
    {
      MutexLock l(mu_);
      while (!(closing_ || head_ != nullptr)) cv_.wait(mu_);
      if (head_ == nullptr) return;
      job = head_;
      head_ = head_->next;
      if (head_ == nullptr) tail_ = nullptr;
    }
    run_job(job, true);
  }
}

std::uint32_t Session::execute(Job& job) noexcept {
  const Request& r = job.req;
  if (job.error || job.done) {
    if (job.error) {
      send_error(r, job.error);
    } else {
      send_ok(r);
    }
    return job.error;
  }
  std::uint32_t e = 0;
  switch (r.type) {
    case kCmdRead: return execute_read(job);
    case kCmdWrite:
      e = backend_.write(r.offset, r.length, job.data);
      if (!e && (r.flags & kCmdFlagFua)) e = backend_.flush();
      pipelined(job);
      break;
    case kCmdFlush: e = backend_.flush(); break;
    case kCmdTrim: e = backend_.trim(r.offset, r.length); break;
    case kCmdWriteZeroes:
      e = backend_.zero(r.offset, r.length, (r.flags & kCmdFlagNoHole) != 0);
      break;
    case kCmdCache: break;
    case kCmdBlockStatus: return execute_block_status(r, job.data);
    default: e = kEinval;
  }
  if (e) {
    send_error(r, e);
  } else {
    send_ok(r);
  }
  return e;
}

// The job's data: its piece (preallocated), else nullptr.
std::uint32_t Session::execute_read(const Job& job) noexcept {
  const Request& r = job.req;
  std::uint8_t* const piece = job.data;
  if (piece) {
    const auto first =
        static_cast<std::uint32_t>(std::min<std::size_t>(pool_.piece_bytes(), r.length));
    const std::uint32_t e = backend_.read(r.offset, first, piece);
    pipelined(job);
    if (e) {
      send_error(r, e);
    } else if (first == r.length) {
      send_read(r, piece);
    } else {
      send_read_in_pieces(r, piece, first);  // a later piece's error ends the reply there
    }
    return e;
  }
  std::uint8_t* buf = get_buffer(r.length);
  const std::uint32_t e = buf ? backend_.read(r.offset, r.length, buf) : kEnomem;
  pipelined(job);
  if (e) {
    send_error(r, e);
  } else {
    send_read(r, buf);
  }
  put_buffer(buf, r.length);
  return e;
}

std::uint32_t Session::execute_block_status(const Request& r, std::uint8_t* piece) noexcept {
  std::size_t max = (r.flags & kCmdFlagReqOne) ? 1 : kMaxExtents;
  std::uint8_t* owned = nullptr;  // on demand: mapped, so untouched pages cost nothing
  Extent* extents;
  if (piece) {  // 4 KiB aligned; the reply may cover less than asked (the spec allows it)
    max = std::min(max, pool_.piece_bytes() / sizeof(Extent));
    extents = reinterpret_cast<Extent*>(piece);
  } else {
    owned = get_buffer(max * sizeof(Extent));
    extents = reinterpret_cast<Extent*>(owned);
  }
  std::size_t n = 0;
  const std::uint32_t e =
      extents ? backend_.block_status(r.offset, r.length, extents, max, &n) : kEnomem;
  if (e || n == 0) {
    if (e) {
      send_error(r, e);
    } else {
      send_ok(r);
    }
  } else {
    send_extents(r, extents, n);
  }
  put_buffer(owned, max * sizeof(Extent));
  return e;
}

void serve_session(int fd, Transport& transport, Backend& backend, const Negotiated& neg,
                   const LogFn& log, const SessionOptions& options) noexcept {
  Session(fd, transport, backend, neg, log, options).run();
}

}  // namespace uzram::nbd
