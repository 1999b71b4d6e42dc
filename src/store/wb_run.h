// store/wb_run.h - WbRun: the batched write loop that writeback and writeback_compact
// share (layer 3). Guide: docs/store-postprocessing.md#writeback.
//
// A pass fills a batch (up to writeback_batch_size pages bound for backing blocks),
// hands it to the BlockWriter, fills the next while it is written, and publishes each
// batch once it is durable: every object whose slot is unchanged becomes written back (or
// moves), the others are dropped. Space comes from the allocator page by page: a page's
// block is reserved (pinned) when the batch first needs it, charged to writeback_limit
// when the pass charges it, and unpinned when its batch is published or dropped, so a
// block nothing was published in goes straight back. Every exit - candidates exhausted,
// limit exhausted, backing tier full, write errors, an unreachable remote - goes through
// finish() for every batch that was filled: no reserved block outlives the pass.
//
// Packed placement: objects follow one another at the batch's cursor; one may continue
// into the next page when that page's block follows the previous one's (a run on the
// tier), else it starts on the next page and the rest of the page stays unused. Raw pages
// start on a page of their own.
//
// Subclasses say where candidates come from (next, release), place one (place: reserve
// space, copy the bytes under the slot lock, commit) and publish it (publish).
#ifndef UZRAM_STORE_WB_RUN_H_
#define UZRAM_STORE_WB_RUN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "store/backing.h"
#include "store/block_writer.h"
#include "store/store_impl.h"

namespace uzram {

class WbRun {
 public:
  // `what` names the command in messages; `charge`: writeback proper (writeback_limit
  // applies, failed objects count in failed_writebacks).
  WbRun(StoreImpl& s, const char* what, bool charge) noexcept;
  virtual ~WbRun();
  WbRun(const WbRun&) = delete;
  WbRun& operator=(const WbRun&) = delete;

  // Allocates the batches (writeback_batch_size pages each). Errc::no_memory.
  [[nodiscard]] Result<void> init(std::string* msg) noexcept;
  // The loop; the result as the command reports it.
  [[nodiscard]] Result<void> run(std::string* msg) noexcept;

 protected:
  enum class Place { placed, skipped, full, stop };

  virtual bool next(std::uint64_t* index) noexcept = 0;
  virtual void release(std::uint64_t index) noexcept = 0;
  virtual Place place(WbBatch* b, std::uint64_t index) noexcept = 0;
  virtual void publish(const WbObj& o, bool ok) noexcept = 0;

  // Where `bytes` go in b (raw: a whole page): *off, the byte offset in b's buffer, and
  // *addr, where that is on the tier. May reserve pages. Not used until commit().
  Place reserve(WbBatch* b, std::uint32_t bytes, bool raw, std::uint64_t* off,
                WbAddr* addr) noexcept;
  // The object reserved at [off, off + bytes) is in: records it.
  void commit(WbBatch* b, std::uint64_t off, std::uint32_t bytes, const WbObj& o) noexcept {
    b->objs[b->nobjs++] = o;
    pos_ = off + bytes;
  }
  // An object that takes no space in the batch (a unit's same-filled member): recorded,
  // the cursor stays.
  void add(WbBatch* b, const WbObj& o) noexcept { b->objs[b->nobjs++] = o; }
  // Whether `objs` more objects of up to 4 KiB each fit in b, whatever the placement
  // (raw pages start on a page; packed ones may skip the rest of one).
  bool room(const WbBatch* b, unsigned objs) const noexcept {
    return b->nobjs + objs <= b->objcap && b->cap - pos_ / kBlockSize >= objs + 1;
  }
  // The batch's state before a group of objects (a unit's members), to drop them all if
  // one of them cannot be placed: the pages past the cursor go back at submission.
  struct Mark {
    unsigned nobjs;
    std::uint64_t pos;
  };
  Mark mark(const WbBatch* b) const noexcept { return {b->nobjs, pos_}; }
  void rollback(WbBatch* b, const Mark& m) noexcept {
    b->nobjs = m.nobjs;
    pos_ = m.pos;
  }
  void note_error(std::error_code e) noexcept {
    last_err_ = e;
    failed_++;
  }

  StoreImpl& s_;
  StoreImpl::Backing& b_;
  const char* const what_;

 private:
  Place add_page(WbBatch* b) noexcept;
  void fill(WbBatch* b) noexcept;
  void submit(WbBatch* b) noexcept;
  void finish(WbBatch* b) noexcept;
  void drop_pages(WbBatch* b, unsigned keep, bool written) noexcept;
  Result<void> report(std::string* msg) const noexcept;
  // One page of writeback_limit: 1 charged, 0 no limit, -1 exhausted.
  int charge() noexcept;
  void refund(unsigned pages) noexcept {
    if (pages) s_.wb_limit_pages_.fetch_add(pages, std::memory_order_relaxed);
  }

  const bool charge_;
  unsigned batch_pages_ = 0;
  unsigned nbatches_ = 2;
  std::unique_ptr<WbBatch[]> batches_;
  unsigned char* pages_ = nullptr;  // every batch's pages (aligned_alloc)
  std::unique_ptr<std::uint64_t[]> blocks_;
  std::unique_ptr<WbObj[]> objs_;
  WbBatch* free_ = nullptr;
  unsigned in_flight_ = 0;
  std::uint64_t pos_ = 0;   // cursor in the batch being filled
  bool exhausted_ = false;  // no candidate left
  bool carry_ = false;      // carry_index_ did not fit: first in the next batch
  std::uint64_t carry_index_ = 0;
  Errc stop_ = Errc::ok;      // fatal: limit exhausted, backing tier full or unreachable
  bool unreachable_ = false;  // stop_ came from an unreachable remote
  std::error_code last_err_;  // not fatal: a write or a read failed; the pass goes on
  int last_errno_ = 0;
  std::uint64_t failed_ = 0;
  std::unique_ptr<BlockWriter> writer_;  // last: its threads are joined before the batches go
};

}  // namespace uzram

#endif  // UZRAM_STORE_WB_RUN_H_
