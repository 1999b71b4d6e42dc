// store/block_writer.h - BlockWriter: the writeback's batched block I/O (layer 3). Pages
// bound for backing blocks are queued; writer threads (started on demand, at most
// kWbWorkers) take runs of consecutive blocks and write each run with one pwritev, then
// hand the requests back completed. The allocator hands out ascending blocks, so a batch
// usually is one run. If no thread can be started the submitter writes inline.
//
// The writeback thread reads slots and publishes completions (writeback.cc); the writer
// threads touch only their requests' pages and the backing descriptor.
#ifndef UZRAM_STORE_BLOCK_WRITER_H_
#define UZRAM_STORE_BLOCK_WRITER_H_

#include <cstdint>

#include "store/backing.h"
#include "sync/mutex.h"
#include "util/thread.h"

namespace uzram {

// Blocks per pwritev (kernel 6.19: writeback_batch_size).
inline constexpr unsigned kRunBlocks = 32;
inline constexpr unsigned kWbDepth = 2 * kRunBlocks;  // in flight: one run written, one filled
inline constexpr unsigned kWbWorkers = 2;             // writer threads, started on demand

// One in-flight write: a 4 KiB page bound for one backing block. The writer fills err and
// buffered; the other fields belong to the submitter.
struct WbReq {
  WbReq* next = nullptr;
  unsigned char* page = nullptr;  // 4 KiB, 4 KiB-aligned (O_DIRECT)
  std::uint64_t index = 0;        // slot
  std::uint64_t block = 0;        // backing block
  std::uint64_t handle = 0;       // the slot's handle when read (re-checked at completion)
  std::uint32_t flags = 0;        // its size | HUGE | priority when read
  std::uint64_t wb_handle = 0;    // what the slot becomes
  std::uint32_t wb_flags = 0;
  bool charged = false;   // took one page of writeback_limit
  int err = 0;            // errno of the write, or of the fdatasync after it
  bool buffered = false;  // written without O_DIRECT: durable only after fdatasync
};

// Thread safety: queue() and reap() are called by one submitting thread; the destructor
// (on that thread) stops and joins the writers.
class BlockWriter {
 public:
  explicit BlockWriter(StoreImpl::Backing& b) noexcept : b_(b) {}
  ~BlockWriter();
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  // Queues r; a full run of queued requests is handed to a writer thread at once, a
  // shorter one at the next reap().
  void queue(WbReq* r) noexcept;
  // Hands whatever is queued to the writers, then waits for completed requests; returns
  // them as a list (linked by next). Call only with requests queued and not yet reaped.
  WbReq* reap() noexcept;

 private:
  void kick_locked() noexcept ZS_REQUIRES(mu_);
  WbReq* take_run_locked() noexcept ZS_REQUIRES(mu_);
  // A run is ready for a writer: a full one, or anything after a reap() asked for it.
  bool ready_locked() const noexcept ZS_REQUIRES(mu_) {
    return todo_ && (queued_ >= kRunBlocks || flush_);
  }
  void run() noexcept;
  void write_run(WbReq* head) noexcept;

  StoreImpl::Backing& b_;
  // Protects: the queues, counters and flags below, and the thread count. A leaf: only the
  // pwritev of a run (with no lock held) happens between its holds.
  // Level: wb_queue.
  Mutex mu_{LockLevel::wb_queue, "wb_queue"};
  CondVar work_cv_, done_cv_;
  WbReq* todo_ ZS_GUARDED_BY(mu_) = nullptr;
  WbReq** todo_tail_ ZS_GUARDED_BY(mu_) = &todo_;
  WbReq* done_ ZS_GUARDED_BY(mu_) = nullptr;
  unsigned queued_ ZS_GUARDED_BY(mu_) = 0;
  unsigned idle_ ZS_GUARDED_BY(mu_) = 0;
  // write short runs too (set by reap, cleared when the queue empties)
  bool flush_ ZS_GUARDED_BY(mu_) = false;
  bool stop_ ZS_GUARDED_BY(mu_) = false;
  Thread threads_[kWbWorkers];  // [0, nthreads_) started (under mu_), joined by the destructor
  unsigned nthreads_ ZS_GUARDED_BY(mu_) = 0;
};

}  // namespace uzram

#endif  // UZRAM_STORE_BLOCK_WRITER_H_
