// store/backing_tier.h - BackingTier: where written-back blocks go (layer 3). Two kinds:
// a local file or block device (store/backing_file.h) and a remote NBD export reached
// through libnbd (store/backing_nbd.h). Writeback, read-back, discard, the limits and
// bd_stat are written once against this interface. Guide: docs/store-postprocessing.md
// #the-backing-tier.
//
// Every call returns 0 or an errno and never blocks without bound: a local tier makes
// plain system calls; a remote one gives every request a deadline (backing_timeout_ms) and
// fails at once, with ENOTCONN, while it is disconnected (it reconnects by itself).
//
// Loss generations (BackingAlloc::gen): a remote tier that finds, on reconnecting, that the
// remote lost its data marks every block in use lost and advances the generation. Each
// read and write carries the generation its caller saw; a remote tier refuses (EIO) one
// whose generation is no longer current when it would be issued, so that nothing decided
// before a loss reaches the new remote. A local tier never changes generation.
#ifndef UZRAM_STORE_BACKING_TIER_H_
#define UZRAM_STORE_BACKING_TIER_H_

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace uzram {

class BackingAlloc;

// One contiguous write of a batch: `len` bytes (whole blocks) at byte `off`.
struct TierWrite {
  const unsigned char* buf = nullptr;  // 4 KiB aligned
  std::size_t len = 0;
  std::uint64_t off = 0;
  int err = 0;  // set by BackingTier::write
};

class BackingTier {
 public:
  virtual ~BackingTier() = default;

  // Writes every op (in parallel where the tier can) and sets each op's err.
  virtual void write(TierWrite* ops, std::size_t n, std::uint64_t gen) noexcept = 0;
  // Reads `len` bytes at byte `off`. Both, and buf, must be multiples of read_align().
  virtual int read(void* buf, std::size_t len, std::uint64_t off, std::uint64_t gen) noexcept = 0;
  // Makes every write completed since session() returned `session` durable (fdatasync;
  // NBD_CMD_FLUSH). A remote fails it (EIO) when the connection changed since: a flush on a
  // new connection says nothing about writes the old one carried.
  virtual std::uint64_t session() const noexcept { return 0; }
  virtual int sync(std::uint64_t session) noexcept = 0;
  // Whether a completed write needs sync() before it is durable: a file without O_DIRECT,
  // a remote that has a write cache (it advertises flush). Read after the writes it covers.
  virtual bool volatile_writes() const noexcept = 0;
  virtual std::size_t read_align() const noexcept = 0;
  // Batches of writeback writes to keep in flight (a remote hides its round trips).
  virtual unsigned batches() const noexcept { return 2; }

  // A tier that discards freed blocks (a remote that supports trim): the allocator then
  // holds freed blocks until the tier has trimmed them (BackingAlloc::take_trims).
  virtual bool trims() const noexcept { return false; }
  virtual bool tracks_loss() const noexcept { return false; }
  // The store's allocator, from init (disksize) until reset: trims and loss marking use it.
  // Called under init_lock_ exclusive; nullptr detaches (before the allocator goes).
  virtual void attach(BackingAlloc* alloc) noexcept { (void)alloc; }
  // Has freed blocks trimmed soon (after many frees, or when writeback needs the space) and
  // waits until the trims issued by then are done.
  virtual void drain_trims() noexcept {}

  // The same file as st (a local tier holding it): writing it again into the store keeps it.
  virtual bool same_file(const struct stat& st) const noexcept {
    (void)st;
    return false;
  }

  // Remote state for debug_stat (a local tier is always connected).
  virtual bool connected() const noexcept { return true; }
  virtual std::uint64_t reconnects() const noexcept { return 0; }
  virtual std::uint64_t trimmed() const noexcept { return 0; }

  std::uint64_t size_blocks() const noexcept { return size_blocks_; }
  const std::string& shown() const noexcept { return shown_; }  // reading backing_dev

 protected:
  std::uint64_t size_blocks_ = 0;  // 4 KiB blocks, fixed at open
  std::string shown_;
};

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_TIER_H_
