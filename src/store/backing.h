// store/backing.h - the backing device of `backing_dev` (layer 3): opening and checking it
// (open_backing: no lock held, never blocks), its block allocator, and the I/O calls the
// writeback and read paths use (with test seams). Rules: docs/store-postprocessing.md
// #backing-device.
//
// The file or block device is opened once, when backing_dev is written, and the descriptor
// is kept until reset or `backing_dev none`: no later open by path, so a file renamed or
// replaced afterwards is never written. A regular file is never grown: its size is the
// size of the backing tier, as a block device's is.
//
// Layout of a written-back slot: WB set, size 0, handle = backing block index (bits 0..47).
// With compressed writeback a non-huge object goes out as its compressed bytes: the slot
// also has WB_COMPRESSED and keeps its priority bits, and handle bits 48..60 hold the
// compressed length (the size field must stay 0: a WB slot holds no pool object).
//
// Block 0 of the backing device is never used (kernel <= 6.18 does the same, so a block
// index is never 0); a backing file exactly disksize long therefore holds disksize/4K - 1
// written-back blocks.
#ifndef UZRAM_STORE_BACKING_H_
#define UZRAM_STORE_BACKING_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "store/store_impl.h"
#include "sync/mutex.h"

namespace uzram {

// A written-back slot's handle: the backing block, and the compressed length above it.
inline constexpr unsigned kWbLenShift = 48;
inline constexpr std::uint64_t kWbBlockMask = (std::uint64_t{1} << kWbLenShift) - 1;

struct StoreImpl::Backing {
  // Set by open_backing(), immutable after:
  int fd = -1;
  dev_t dev = 0;  // identity of the file (st_dev, st_ino)
  ino_t ino = 0;
  std::uint64_t size_blocks = 0;  // 4 KiB blocks in the file or device
  std::string path;               // as shown by reading backing_dev (absolute)
  // O_DIRECT in effect: set when open() gave it (checked with F_GETFL); cleared for good if
  // the file system refuses it at I/O time (EINVAL). Without it every batch is fdatasync'ed
  // before its RAM copies are freed. Relaxed: a stale `true` only costs one more EINVAL.
  std::atomic<bool> direct{false};

  // The allocator, set up by init_blocks() when the store is initialised:
  std::uint64_t nblocks = 0;  // blocks 1 .. nblocks-1 are usable (block 0 never is)
  // Protects: bitmap, used, hint. A leaf lock: taken under the slot lock, nothing inside.
  Mutex mu{LockLevel::backing, "backing"};
  // bit set = in use; block 0 and the tail stay set
  std::unique_ptr<std::uint64_t[]> bitmap ZS_GUARDED_BY(mu);
  std::uint64_t words = 0;  // set by init_blocks(), immutable after
  std::uint64_t used ZS_GUARDED_BY(mu) = 0;
  std::uint64_t hint ZS_GUARDED_BY(mu) = 0;  // word to start the next search at

  Backing() = default;
  Backing(const Backing&) = delete;
  Backing& operator=(const Backing&) = delete;
  ~Backing();

  // Sizes the allocator for a store of `nslots` blocks (at most one backing block per
  // slot, plus block 0). Errors: Errc::no_memory.
  Result<void> init_blocks(std::uint64_t nslots, std::string* msg) noexcept;
  bool alloc(std::uint64_t* block) noexcept;  // false: full
  void release(std::uint64_t block) noexcept;
  // The file system refused O_DIRECT at I/O time (EINVAL): go on with buffered I/O.
  bool drop_direct() noexcept;
};

// Opens PATH for backing_dev and checks it; call with no lock held. O_NOFOLLOW (a symbolic
// link is refused), O_NONBLOCK until the checks pass (a FIFO or a device never blocks the
// open), O_CLOEXEC, O_DIRECT where the file system takes it, O_EXCL for a block device.
// Accepts a block device, or a regular file that belongs to the server's uid, is not
// writable by group or others, and is not on a pseudo file system (proc, sysfs, ...); it
// must hold at least two 4 KiB blocks. Then takes an exclusive flock(): Errc::busy when
// another store (this process or another) uses it. Errors fill *msg, naming backing_dev.
[[nodiscard]] Result<std::unique_ptr<StoreImpl::Backing>> open_backing(const std::string& path,
                                                                       std::string* msg) noexcept;

// I/O on the backing device: 0 or an errno (EIO for an unexpected end of file). Writes
// drop O_DIRECT on EINVAL and go on buffered (Backing::direct tells which).
int backing_pwritev(StoreImpl::Backing& b, iovec* iov, int cnt, off_t off) noexcept;
int backing_pread(StoreImpl::Backing& b, void* buf, std::size_t len, off_t off) noexcept;
int backing_sync(StoreImpl::Backing& b) noexcept;  // fdatasync

// Test seams: the system calls behind backing_pwritev and backing_sync (nullptr restores
// the system's). Set them only while no writeback runs.
namespace backing_testing {
using PwritevFn = ssize_t (*)(int, const iovec*, int, off_t);
using SyncFn = int (*)(int);
void set_hooks(PwritevFn pwritev_fn, SyncFn sync_fn) noexcept;
}  // namespace backing_testing

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_H_
