// store/backing_file.h - the local backing tier (layer 3): a regular file or a block
// device named by `backing_dev`, opened and checked with no lock held (open_file_tier),
// and its I/O calls (with test seams). Rules: docs/store-postprocessing.md#backing-device.
//
// The file or block device is opened once, when backing_dev is written, and the descriptor
// is kept until reset or `backing_dev none`: no later open by path, so a file renamed or
// replaced afterwards is never written. A regular file is never grown: its size is the
// size of the backing tier, as a block device's is.
#ifndef UZRAM_STORE_BACKING_FILE_H_
#define UZRAM_STORE_BACKING_FILE_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>

#include "store/backing_tier.h"
#include "uzram/result.h"

namespace uzram {

// Opens PATH for backing_dev and checks it; call with no lock held. O_NOFOLLOW (a symbolic
// link is refused), O_NONBLOCK until the checks pass (a FIFO or a device never blocks the
// open), O_CLOEXEC, O_DIRECT where the file system takes it, O_EXCL for a block device.
// Accepts a block device, or a regular file that belongs to the server's uid, is not
// writable by group or others, and is not on a pseudo file system (proc, sysfs, ...); it
// must hold at least two 4 KiB blocks. Then takes an exclusive flock(): Errc::busy when
// another store (this process or another) uses it. Errors fill *msg, naming backing_dev.
[[nodiscard]] Result<std::unique_ptr<BackingTier>> open_file_tier(const std::string& path,
                                                                  std::string* msg) noexcept;

// Test seams: the system calls behind the file tier's writes and syncs (nullptr restores
// the system's). Set them only while no writeback runs.
namespace backing_testing {
using PwritevFn = ssize_t (*)(int, const iovec*, int, off_t);
using SyncFn = int (*)(int);
void set_hooks(PwritevFn pwritev_fn, SyncFn sync_fn) noexcept;
}  // namespace backing_testing

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_FILE_H_
