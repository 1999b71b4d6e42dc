// store/backing_nbd.h - the remote backing tier (layer 3): an NBD export reached through
// libnbd, for `backing_dev nbd://...` (also nbds://, nbd+unix://, nbds+unix://; TLS
// options as libnbd takes them in the URI). Guide: docs/store-postprocessing.md
// #remote-backing-tier.
//
// One I/O thread per tier owns the libnbd handle: callers (writeback, reads under a slot
// lock) queue requests and sleep until the thread completes them. Every request has a
// deadline (backing_timeout_ms from its submission); one that passes it, or a connection
// that dies, drops the connection: the handle is closed first (libnbd then no longer
// touches any buffer), then every request in flight fails. While disconnected, new
// requests fail at once (ENOTCONN), and the thread reconnects in the background with
// backoff (50 ms doubling to 2 s); no caller ever waits for a reconnect, and no slot lock
// is held across one.
//
// Block 0 holds a marker (nbd_link.h) with the tier's random id, written when backing_dev
// is written. After each reconnect the thread reads it back: if it is gone, the remote
// lost its data (a restarted `nbdkit memory`), so every block in use is marked lost
// (BackingAlloc::mark_lost) and the marker is written again. Reads of lost blocks fail with
// EIO until they are freed. A remote that must keep written-back blocks across its own
// restarts must be durable (a file or a disk behind the NBD server).
//
// Freed blocks are trimmed (if the export supports trim) in batches: runs of consecutive
// blocks, sent when 256 blocks wait or 50 ms after the first one, or at once when
// writeback needs the space (drain_trims).
//
// Durability: a remote that advertises flush has a write cache; a batch is durable only
// after NBD_CMD_FLUSH on the connection its writes completed on (sync(session) fails if
// the connection changed since session()).
#ifndef UZRAM_STORE_BACKING_NBD_H_
#define UZRAM_STORE_BACKING_NBD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "store/backing_tier.h"
#include "uzram/result.h"

namespace uzram {

// Connects to `uri` (deadline: timeout_ms), checks the export (writable, at least 8 KiB,
// block size at most 4 KiB), trims it whole when it supports trim, writes the marker and
// starts the I/O thread; call with no lock held. timeout_ms stays readable for the tier's
// life (the store's backing_timeout_ms). Errors fill *msg, naming backing_dev.
[[nodiscard]] Result<std::unique_ptr<BackingTier>> open_nbd_tier(
    const std::string& uri, const std::atomic<std::uint32_t>& timeout_ms,
    std::string* msg) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_BACKING_NBD_H_
