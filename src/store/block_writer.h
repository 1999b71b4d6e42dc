// store/block_writer.h - the batches of writeback and writeback_compact, and BlockWriter,
// which writes them (layer 3). A batch is up to writeback_batch_size pages, contiguous in
// memory, each bound for one block of the backing tier; the objects placed in them (one
// raw page each, or packed compressed bytes, store/wb_layout.h) are published when the
// batch is durable. Two batches or more are in flight: one written while the next is
// filled (a remote tier takes four, to hide its round trips).
//
// BlockWriter's writer threads (started on demand, at most kWbWorkers) write a queued
// batch as runs of consecutive blocks, one tier write per run (a pwrite, or one NBD write
// command: every run of a batch is in flight at once on a remote), sync it when the tier
// cached the writes (fdatasync, NBD_CMD_FLUSH), then hand it back completed. The allocator
// hands out ascending blocks, so a batch usually is one run. If no thread can be started
// the submitter writes inline.
//
// The pass thread fills batches (under each slot's lock) and publishes completions
// (writeback.cc, wb_compact.cc); the writer threads touch only their batch's pages and
// the tier.
#ifndef UZRAM_STORE_BLOCK_WRITER_H_
#define UZRAM_STORE_BLOCK_WRITER_H_

#include <cstdint>

#include "store/backing_tier.h"
#include "sync/mutex.h"
#include "util/thread.h"

namespace uzram {

// Batches in flight: at least two (one written while the next is filled), as many as the
// tier wants (BackingTier::batches), and at most kWbMaxBatches; a writer thread per batch.
inline constexpr unsigned kWbMaxBatches = 4;
inline constexpr unsigned kWbWorkers = kWbMaxBatches;  // writer threads, started on demand

// One object placed in a batch: the slot, what it held when read (compared again at
// publication), and what it becomes.
struct WbObj {
  std::uint64_t index = 0;      // slot
  std::uint64_t handle = 0;     // the slot's handle when read
  std::uint64_t wb_handle = 0;  // its new handle (store/wb_layout.h)
  std::uint32_t flags = 0;      // size | HUGE | WB | WB_COMPRESSED | priority when read
  std::uint32_t wb_flags = 0;   // its new flags
};

struct WbBatch {
  WbBatch* next = nullptr;
  unsigned char* pages = nullptr;   // cap pages, 4 KiB-aligned, contiguous
  std::uint64_t* blocks = nullptr;  // backing block of each page
  WbObj* objs = nullptr;
  unsigned cap = 0, objcap = 0;
  // Filled by the pass thread:
  unsigned npages = 0;     // pages in use, each pinned in the allocator
  std::uint32_t tail = 0;  // bytes used in the last page
  unsigned nobjs = 0;
  unsigned charged = 0;       // pages of writeback_limit taken
  std::uint64_t gen = 0;      // loss generation when filled
  std::uint64_t session = 0;  // the tier's session before the writes
  // Set by the writer:
  int err = 0;            // errno of a write, or of the sync after the writes
  bool buffered = false;  // written to a volatile cache, and synced (unless err)

  void reset() noexcept {
    npages = nobjs = charged = 0;
    tail = 0;
    err = 0;
    buffered = false;
  }
  unsigned char* page(unsigned i) const noexcept { return pages + std::size_t{i} * 4096; }
};

// Thread safety: queue() and reap() are called by one submitting thread; the destructor
// (on that thread) stops and joins the writers.
class BlockWriter {
 public:
  explicit BlockWriter(BackingTier& t) noexcept : t_(t) {}
  ~BlockWriter();
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  // Hands b to a writer thread (or writes it inline without one).
  void queue(WbBatch* b) noexcept;
  // Waits for a written batch and returns it. Call only with batches queued and not reaped.
  WbBatch* reap() noexcept;

 private:
  void run() noexcept;
  void write(WbBatch* b) noexcept;

  BackingTier& t_;
  // Protects: the queues, idle_, stop_, the thread count. Level: wb_queue, a leaf: never
  // held with a slot lock; the tier write of a batch happens with no lock held.
  Mutex mu_{LockLevel::wb_queue, "wb_queue"};
  CondVar work_cv_, done_cv_;
  WbBatch* todo_ ZS_GUARDED_BY(mu_) = nullptr;  // LIFO is fine: a handful of batches
  WbBatch* done_ ZS_GUARDED_BY(mu_) = nullptr;
  unsigned idle_ ZS_GUARDED_BY(mu_) = 0;
  bool stop_ ZS_GUARDED_BY(mu_) = false;
  Thread threads_[kWbWorkers];  // [0, nthreads_) started (under mu_), joined by the destructor
  unsigned nthreads_ ZS_GUARDED_BY(mu_) = 0;
};

}  // namespace uzram

#endif  // UZRAM_STORE_BLOCK_WRITER_H_
