// store/writeback.cc - the backing device (backing_dev), its block allocator, the
// `writeback` command, and reading a written-back block. Guide and protocol:
// docs/store-postprocessing.md.
//
// Layout of a written-back slot: WB set, size 0, handle = backing block index (bits 0..47).
// With compressed writeback a non-huge object goes out as its compressed bytes: the slot
// also has WB_COMPRESSED and keeps its priority bits, and handle bits 48..60 hold the
// compressed length (the size field must stay 0: a WB slot holds no pool object).
//
// Block 0 of the backing device is never used (kernel <= 6.18 does the same, so a block
// index is never 0); a backing file exactly disksize long therefore holds disksize/4K - 1
// written-back blocks.
//
// Writes are batched: up to kWbDepth requests in flight, written by up to kWbWorkers
// threads with pwritev, which coalesce runs of consecutive blocks (the allocator hands out
// ascending blocks, so a batch usually is one run). The writeback thread reads slots and
// publishes completions; the writer threads touch only their request pages and the fd.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "store/backing.h"
#include "store/kv.h"
#include "store/pp_buckets.h"
#include "store/store_impl.h"
#include "util/check.h"
#include "util/thread.h"

namespace uzram {
namespace {

constexpr unsigned kWbLenShift = 48;
constexpr std::uint64_t kWbBlockMask = (std::uint64_t{1} << kWbLenShift) - 1;
constexpr unsigned kRunBlocks = 32;  // blocks per pwritev (kernel 6.19: writeback_batch_size)
constexpr unsigned kWbDepth = 2 * kRunBlocks;  // requests in flight: one run written, one filled
constexpr unsigned kWbWorkers = 2;   // writer threads, started on demand

// Writeback modes (filters); 0 = every allocated slot (page_index without a type).
constexpr unsigned kModeIdle = 1, kModeHuge = 2, kModeIncompressible = 4;

Result<void> fail(std::string* msg, std::error_code e, std::string text) {
  if (msg) *msg = std::move(text);
  return e;
}

std::string errno_text(int err) { return std::strerror(err); }

int parse_mode(std::string_view w) noexcept {
  if (w == "idle") return kModeIdle;
  if (w == "huge") return kModeHuge;
  if (w == "huge_idle") return kModeIdle | kModeHuge;
  if (w == "incompressible") return kModeIncompressible;
  return -1;
}

// One in-flight write: a 4 KiB page bound for one backing block.
struct WbReq {
  WbReq* next = nullptr;
  unsigned char* page = nullptr;  // 4 KiB, 4 KiB-aligned (O_DIRECT)
  std::uint64_t index = 0;        // slot
  std::uint64_t block = 0;        // backing block
  std::uint64_t handle = 0;       // the slot's handle when read (re-checked at completion)
  std::uint32_t flags = 0;        // its size | HUGE | priority when read
  std::uint64_t wb_handle = 0;    // what the slot becomes
  std::uint32_t wb_flags = 0;
  bool charged = false;           // took one page of writeback_limit
  int err = 0;                    // errno of the write, or of the fdatasync after it
  bool buffered = false;          // written without O_DIRECT: durable only after fdatasync
};

using Backing = StoreImpl::Backing;

// Writer threads: take queued requests (coalescing consecutive blocks into one pwritev)
// and hand them back completed. Started on demand, at most kWbWorkers; if no thread can be
// started the submitter writes inline.
class BlockWriter {
 public:
  explicit BlockWriter(Backing& b) noexcept : b_(b) {}
  ~BlockWriter() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (unsigned i = 0; i < nthreads_; i++) threads_[i].join();
  }
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  // Queues r; a full run of queued requests is handed to a writer thread at once, a
  // shorter one at the next reap().
  void queue(WbReq* r) noexcept {
    r->next = nullptr;
    std::unique_lock<std::mutex> l(mu_);
    *todo_tail_ = r;
    todo_tail_ = &r->next;
    if (++queued_ >= kRunBlocks) kick_locked(l);
  }

  // Hands whatever is queued to the writers, then waits for completed requests; returns
  // them as a list (linked by next).
  WbReq* reap() noexcept {
    std::unique_lock<std::mutex> l(mu_);
    if (queued_ > 0) {
      flush_ = true;
      kick_locked(l);
    }
    done_cv_.wait(l, [this] { return done_ != nullptr; });
    WbReq* d = done_;
    done_ = nullptr;
    return d;
  }

 private:
  // Wakes a writer thread, starting one if none is idle (up to kWbWorkers); without any
  // thread, writes the queue inline. May drop and retake the lock.
  void kick_locked(std::unique_lock<std::mutex>& l) noexcept {
    // No thread (EAGAIN, ENOMEM): the ones we have, or the inline path below, will do.
    if (idle_ == 0 && nthreads_ < kWbWorkers &&
        threads_[nthreads_].start([this]() noexcept { run(); }) == 0) {
      nthreads_++;
    }
    if (nthreads_ > 0) {
      work_cv_.notify_one();
      return;
    }
    while (todo_) {
      WbReq* head = take_run_locked();
      l.unlock();
      write_run(head);
      l.lock();
    }
  }

  // Pops the queue head and the requests behind it whose blocks follow it.
  WbReq* take_run_locked() noexcept {
    WbReq* head = todo_;
    WbReq* last = head;
    unsigned n = 1;
    while (last->next && last->next->block == last->block + 1 && n < kRunBlocks) {
      last = last->next;
      n++;
    }
    todo_ = last->next;
    if (!todo_) {
      todo_tail_ = &todo_;
      flush_ = false;
    }
    last->next = nullptr;
    queued_ -= n;
    return head;
  }

  // A run is ready for a writer: a full one, or anything after a reap() asked for it.
  bool ready_locked() const noexcept { return todo_ && (queued_ >= kRunBlocks || flush_); }

  void run() noexcept {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      idle_++;
      work_cv_.wait(l, [this] { return ready_locked() || stop_; });
      idle_--;
      if (!ready_locked()) return;  // stopping
      WbReq* head = take_run_locked();
      l.unlock();
      write_run(head);
      l.lock();
    }
  }

  void write_run(WbReq* head) noexcept {
    iovec iov[kRunBlocks];
    int n = 0;
    WbReq* tail = head;
    for (WbReq* r = head; r; r = r->next) {
      iov[n].iov_base = r->page;
      iov[n].iov_len = kBlockSize;
      n++;
      tail = r;
    }
    const int err = backing_pwritev(b_, iov, n, static_cast<off_t>(head->block * kBlockSize));
    // O_DIRECT is dropped for good on the first EINVAL: still set after the write, it
    // carried the whole run.
    const bool buffered = !b_.direct.load(std::memory_order_relaxed);
    for (WbReq* r = head; r; r = r->next) {
      r->err = err;
      r->buffered = buffered;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      tail->next = done_;
      done_ = head;
    }
    done_cv_.notify_one();
  }

  Backing& b_;
  // Protects: the queues and counters below.
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  WbReq* todo_ = nullptr;
  WbReq** todo_tail_ = &todo_;
  WbReq* done_ = nullptr;
  unsigned queued_ = 0;
  unsigned idle_ = 0;
  bool flush_ = false;  // write short runs too (set by reap, cleared when the queue empties)
  bool stop_ = false;
  Thread threads_[kWbWorkers];  // [0, nthreads_) started
  unsigned nthreads_ = 0;
};

}  // namespace

// ---- backing_dev ------------------------------------------------------------------------

// Opens and checks the file with no lock held (a FIFO or a slow file system must not stall
// the store), then installs it under init_lock_, re-checking that the store is still not
// initialised. Protocol: docs/store-postprocessing.md#backing-device.
Result<void> StoreImpl::backing_dev_store(std::string_view value, std::string* msg) noexcept {
  value = trim(value);
  {
    std::shared_lock l(init_lock_);
    if (disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  }
  if (value.empty() || value == "none") {
    std::shared_ptr<Backing> old;  // closed after the lock is released
    std::unique_lock l(init_lock_);
    if (disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
    old = std::move(backing_);
    backing_path_.clear();
    return {};
  }
  std::string path;
  try {
    path.assign(value);
  } catch (...) {
    return fail(msg, Errc::no_memory, "backing_dev: out of memory");
  }
  std::string why;
  auto opened = open_backing(path, &why);
  struct stat st {};
  const bool busy_file = !opened && opened.error() == Errc::busy && ::lstat(path.c_str(), &st) == 0;
  std::shared_ptr<Backing> old;  // closed after the lock is released (declared before it)
  std::unique_lock l(init_lock_);
  if (disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  if (!opened) {
    // The flock is this store's own when it already holds the same file: keep that one.
    if (busy_file && backing_ && S_ISREG(st.st_mode) && st.st_dev == backing_->dev &&
        st.st_ino == backing_->ino) {
      return {};
    }
    return fail(msg, opened.error(), std::move(why));
  }
  try {
    std::string shown = (*opened)->path;
    std::shared_ptr<Backing> b(std::move(opened).value());  // on bad_alloc it is deleted
    old = std::move(backing_);
    backing_ = std::move(b);
    backing_path_ = std::move(shown);
  } catch (...) {
    return fail(msg, Errc::no_memory, "backing_dev: out of memory");
  }
  return {};
}

Result<void> StoreImpl::backing_open_locked(std::string* msg) noexcept {
  if (!backing_) return {};
  return backing_->init_blocks(nslots_, msg);
}

void StoreImpl::backing_close_locked() noexcept {
  if (backing_) {
    ZS_DCHECK(backing_->used == 0, "backing device closed with %llu blocks in use",
              static_cast<unsigned long long>(backing_->used));
  }
  backing_.reset();  // closes the fd and drops its flock
}

// ---- backing blocks of written-back slots -------------------------------------------------

void StoreImpl::free_backing_block(std::uint64_t block) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  backing_->release(block & kWbBlockMask);
}

Result<void> StoreImpl::read_backing_block(Slot& s, std::uint64_t block, void* out) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  Backing& b = *backing_;
  const std::uint32_t f = s.get();
  alignas(4096) unsigned char buf[kBlockSize];
  const bool compressed = f & slotf::kWbCompressed;
  void* dst = compressed || b.direct.load(std::memory_order_relaxed) ? buf : out;
  stats_.bd_reads.fetch_add(1, std::memory_order_relaxed);
  const auto off = static_cast<off_t>((block & kWbBlockMask) * kBlockSize);
  if (backing_pread(b, dst, kBlockSize, off) != 0) {
    return Errc::io_error;
  }
  if (compressed) {
    const auto len = static_cast<std::size_t>(block >> kWbLenShift);
    Stream& st = streams_[s.prio()].get();
    auto r = st.codec->decompress(buf, len, out, kBlockSize);
    StreamPool::put(st);
    return r;
  }
  if (dst != out) std::memcpy(out, buf, kBlockSize);
  return {};
}

// ---- writeback --------------------------------------------------------------------------

namespace {

struct WbCommand {
  unsigned mode = 0;
  bool has_mode = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // inclusive; empty = device
};

Result<void> parse_writeback(std::string_view value, std::uint64_t nslots, WbCommand* cmd, std::string* msg) {
  const auto kvs = split_kv(value);
  if (kvs.empty()) {
    return fail(msg, Errc::invalid_argument,
                "writeback: expects type=idle|huge|huge_idle|incompressible, page_index=N or page_indexes=LO-HI");
  }
  const auto set_mode = [&](std::string_view w) -> Result<void> {
    const int m = parse_mode(w);
    if (m < 0) {
      return fail(msg, Errc::invalid_argument,
                  "writeback: unknown type '" + std::string(w) + "' (idle, huge, huge_idle or incompressible)");
    }
    if (cmd->has_mode) return fail(msg, Errc::invalid_argument, "writeback: more than one type given");
    cmd->mode = static_cast<unsigned>(m);
    cmd->has_mode = true;
    return {};
  };
  for (const KeyValue& kv : kvs) {
    if (!kv.has_value || kv.key == "type") {  // bare words: the legacy syntax
      if (auto r = set_mode(kv.has_value ? kv.value : kv.key); !r) return r;
      continue;
    }
    std::uint64_t lo = 0, hi = 0;
    if (kv.key == "page_index") {
      if (!parse_u64(kv.value, &lo)) {
        return fail(msg, Errc::invalid_argument, "writeback: bad page_index '" + std::string(kv.value) + "'");
      }
      hi = lo;
    } else if (kv.key == "page_indexes") {
      const std::size_t dash = kv.value.find('-');
      if (dash == std::string_view::npos || !parse_u64(kv.value.substr(0, dash), &lo) ||
          !parse_u64(kv.value.substr(dash + 1), &hi)) {
        return fail(msg, Errc::invalid_argument,
                    "writeback: bad page_indexes '" + std::string(kv.value) + "' (expected LO-HI)");
      }
      if (lo > hi) {
        return fail(msg, Errc::out_of_range, "writeback: page_indexes " + std::string(kv.value) + ": LO > HI");
      }
    } else {
      return fail(msg, Errc::invalid_argument, "writeback: unknown parameter '" + std::string(kv.key) + "'");
    }
    if (hi >= nslots) {
      return fail(msg, Errc::out_of_range, "writeback: " + std::string(kv.key) + "=" + std::string(kv.value) +
                  " is beyond the device (" + std::to_string(nslots) + " blocks)");
    }
    try {
      cmd->ranges.emplace_back(lo, hi);
    } catch (...) {
      return fail(msg, Errc::no_memory, "writeback: out of memory");
    }
  }
  return {};
}

}  // namespace

// Protocol: docs/store-postprocessing.md#writeback. Caller holds init_lock_ shared.
Result<void> StoreImpl::writeback_store(std::string_view value, std::string* msg) noexcept {
  if (!backing_) {
    return fail(msg, Errc::not_supported, "writeback: no backing device (write backing_dev before disksize)");
  }
  WbCommand cmd;
  if (auto r = parse_writeback(value, nslots_, &cmd, msg); !r) return r;
  if (pp_in_progress_.exchange(true, std::memory_order_acquire)) {
    return fail(msg, Errc::busy, "writeback: another writeback or recompress is in progress");
  }
  struct PpDone {
    std::atomic<bool>& flag;
    ~PpDone() { flag.store(false, std::memory_order_release); }
  } pp_done{pp_in_progress_};
  Backing& b = *backing_;

  const auto release = [this](std::uint64_t index) {  // drops a candidate: clears PP_SLOT
    Slot& s = slots_[index];
    s.lock();
    s.set(s.get() & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
  };

  // 1. Candidates: allocated pool objects (not WB, not SAME) that pass the mode's filter.
  PpBuckets buckets;
  const auto scan = [&](std::uint64_t lo, std::uint64_t hi) -> bool {
    return for_each_stored_slot(lo, hi + 1, [&](std::uint64_t i, Slot& s) {  // re-checked below
      s.lock();
      const std::uint32_t f = s.get();
      bool take = (f & slotf::kSizeMask) && !(f & (slotf::kWb | slotf::kSame | slotf::kPpSlot));
      if ((cmd.mode & kModeIdle) && !(f & slotf::kIdle)) take = false;
      if ((cmd.mode & kModeHuge) && !(f & slotf::kHuge)) take = false;
      if ((cmd.mode & kModeIncompressible) && !(f & slotf::kIncompressible)) take = false;
      if (take) s.set((f | slotf::kPpSlot) & ~slotf::kLock);
      s.unlock();
      if (take && !buckets.add(i, f & slotf::kSizeMask)) {
        release(i);
        return false;
      }
      return true;
    });
  };
  bool scanned = true;
  if (cmd.ranges.empty()) {
    scanned = nslots_ == 0 || scan(0, nslots_ - 1);
  } else {
    for (const auto& [lo, hi] : cmd.ranges) {
      if (!(scanned = scan(lo, hi))) break;
    }
  }
  if (!scanned) {
    for (std::uint64_t i; buckets.pop(&i);) release(i);
    return fail(msg, Errc::no_memory, "writeback: out of memory");
  }
  if (buckets.empty()) return {};

  // 2. Writes, largest objects first, kWbDepth in flight.
  const auto free_pages = [](unsigned char* p) { std::free(p); };
  std::unique_ptr<unsigned char, decltype(free_pages)> pages(
      static_cast<unsigned char*>(std::aligned_alloc(4096, kWbDepth * kBlockSize)), free_pages);
  if (!pages) {
    for (std::uint64_t i; buckets.pop(&i);) release(i);
    return fail(msg, Errc::no_memory, "writeback: out of memory");
  }
  WbReq reqs[kWbDepth];
  WbReq* free_reqs = nullptr;
  for (unsigned i = 0; i < kWbDepth; i++) {
    reqs[i].page = pages.get() + std::size_t{i} * kBlockSize;
    reqs[i].next = free_reqs;
    free_reqs = &reqs[i];
  }
  const bool compressed = compressed_writeback_;
  const auto charge = [this]() -> int {  // 1 charged, 0 no limit, -1 exhausted
    if (!wb_limit_enable_.load(std::memory_order_relaxed)) return 0;
    std::uint64_t cur = wb_limit_pages_.load(std::memory_order_relaxed);
    do {
      if (cur == 0) return -1;
    } while (!wb_limit_pages_.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed));
    return 1;
  };
  const auto refund = [this](WbReq* r) {
    if (r->charged) wb_limit_pages_.fetch_add(1, std::memory_order_relaxed);
    r->charged = false;
  };

  Errc stop = Errc::ok;         // fatal: limit exhausted, device full
  std::error_code last_err;     // not fatal: a write or a read failed; the pass goes on
  int last_errno = 0;
  std::uint64_t failed = 0;
  unsigned in_flight = 0;
  BlockWriter writer(b);

  // Reads slot `index` into r (under its lock). False: skip it (r stays free).
  const auto fill = [&](WbReq* r, std::uint64_t index) -> bool {
    Slot& s = slots_[index];
    s.lock();
    const std::uint32_t f = s.get();
    const std::uint64_t h = s.handle.load(std::memory_order_relaxed);
    if (!(f & slotf::kPpSlot) || !(f & slotf::kSizeMask) || (f & (slotf::kWb | slotf::kSame))) {
      s.unlock();  // accessed or freed since the scan
      return false;
    }
    const std::uint32_t size = f & slotf::kSizeMask;
    r->index = index;
    r->handle = h;
    r->flags = f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask);
    r->wb_handle = r->block;
    r->wb_flags = slotf::kWb;
    if (compressed && !(f & slotf::kHuge)) {  // the compressed bytes as they are
      const auto handle = static_cast<Handle>(h);
      const void* p = pool_->read_begin(handle, r->page);
      if (p != r->page) std::memcpy(r->page, p, size);
      pool_->read_end(handle, p);
      std::memset(r->page + size, 0, kBlockSize - size);
      r->wb_handle |= std::uint64_t{size} << kWbLenShift;
      r->wb_flags |= slotf::kWbCompressed | (f & slotf::kPrioMask);
    } else if (auto lr = load_locked(s, r->page); !lr) {
      s.set(f & ~(slotf::kPpSlot | slotf::kLock));
      s.unlock();
      last_err = lr.error();
      failed++;
      return false;
    }
    s.unlock();
    return true;
  };

  // Publishes a completed write: the slot becomes WB if nothing touched it meanwhile.
  const auto complete = [&](WbReq* r) {
    if (r->err == 0) stats_.bd_writes.fetch_add(1, std::memory_order_relaxed);
    Slot& s = slots_[r->index];
    s.lock();
    const std::uint32_t f = s.get();
    const bool unchanged = (f & slotf::kPpSlot) && !(f & (slotf::kWb | slotf::kSame)) &&
                           s.handle.load(std::memory_order_relaxed) == r->handle &&
                           (f & (slotf::kSizeMask | slotf::kHuge | slotf::kPrioMask)) == r->flags;
    if (r->err == 0 && unchanged) {
      free_slot_locked(s);  // the pool object, compr_data_size, huge_pages, pages_stored
      s.handle.store(r->wb_handle, std::memory_order_relaxed);
      s.set(r->wb_flags);
      stats_.pages_stored.fetch_add(1, std::memory_order_relaxed);
      stats_.bd_count.fetch_add(1, std::memory_order_relaxed);
      s.unlock();
      r->charged = false;
      return;
    }
    if (f & slotf::kPpSlot) s.set(f & ~(slotf::kPpSlot | slotf::kLock));
    s.unlock();
    b.release(r->block);
    if (r->err != 0) {  // the write (or its sync) failed: the RAM copy stays, budget back
      stats_.wb_failed.fetch_add(1, std::memory_order_relaxed);
      refund(r);
      last_err = make_error_code(Errc::io_error);
      last_errno = r->err;
      failed++;
    }
    r->charged = false;
  };

  for (;;) {
    while (stop == Errc::ok && free_reqs) {
      std::uint64_t index;
      if (!buckets.pop(&index)) break;
      WbReq* r = free_reqs;
      const int c = charge();
      if (c < 0) {
        release(index);
        stop = Errc::io_error;
        break;
      }
      r->charged = c > 0;
      if (!b.alloc(&r->block)) {
        release(index);
        refund(r);
        stop = Errc::no_memory;
        break;
      }
      if (!fill(r, index)) {
        b.release(r->block);
        refund(r);
        continue;
      }
      free_reqs = r->next;
      writer.queue(r);
      in_flight++;
    }
    if (in_flight == 0) break;
    WbReq* done = writer.reap();
    // Durable before published: a run written without O_DIRECT is only in the page cache,
    // where a failed writeback would surface later, with the RAM copy gone. One fdatasync
    // covers every buffered write reaped here; if it fails, none of them is trusted.
    bool need_sync = false;
    for (WbReq* r = done; r; r = r->next) need_sync |= r->err == 0 && r->buffered;
    if (need_sync) {
      if (const int e = backing_sync(b); e != 0) {
        for (WbReq* r = done; r; r = r->next) {
          if (r->err == 0 && r->buffered) r->err = e;
        }
      }
    }
    for (WbReq* r = done; r;) {
      WbReq* next = r->next;
      complete(r);
      r->next = free_reqs;
      free_reqs = r;
      in_flight--;
      r = next;
    }
  }
  for (std::uint64_t i; buckets.pop(&i);) release(i);

  if (stop == Errc::io_error) {
    return fail(msg, stop, "writeback: writeback_limit exhausted (writeback_limit_enable is 1)");
  }
  if (stop == Errc::no_memory) {
    return fail(msg, stop, "writeback: backing device '" + backing_path_ + "' is full (" +
                std::to_string(b.nblocks - 1) + " blocks)");
  }
  if (last_err) {
    return fail(msg, last_err, "writeback: " + std::to_string(failed) + " block(s) not written back" +
                (last_errno ? ": " + errno_text(last_errno) : std::string()));
  }
  return {};
}

}  // namespace uzram
