// uzram/store.h - Store: the zram block device's logic in userspace, on a uzram::Pool.
//
// A store is one "zramN": 4 KiB logical blocks, configured and observed through attributes
// with the names, value grammar and text formats of /sys/block/zramN (write_attr /
// read_attr), plus block I/O (write/read/discard). Lifecycle as in the kernel: created
// uninitialised; writing `disksize` initialises it (allocates the slot table, creates the
// pool and the compression streams); `reset` returns it to uninitialised.
//
// Thread safety: every method may be called from any thread concurrently. Block I/O to the
// same block from several threads is serialised by the block's slot lock (concurrent
// writes to one block never leak). Configuration writes that the kernel refuses after
// initialisation fail with Errc::busy. docs/store.md is the guide.
#ifndef UZRAM_STORE_H_
#define UZRAM_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "uzram/result.h"

namespace uzram {

class Pool;

inline constexpr std::size_t kBlockSize = 4096;

// The nine fields of mm_stat, in the kernel's order and with its names.
struct MmStat {
  std::uint64_t orig_data_size = 0;    // bytes of uncompressed data stored (pages * 4096)
  std::uint64_t compr_data_size = 0;   // sum of compressed object sizes
  std::uint64_t mem_used_total = 0;    // pool frames * 4096
  std::uint64_t mem_limit = 0;         // bytes, 0 = none
  std::uint64_t mem_used_max = 0;      // high-water mark of mem_used_total
  std::uint64_t same_pages = 0;        // same-filled blocks (metadata only)
  std::uint64_t pages_compacted = 0;   // frames freed by compaction, cumulative
  std::uint64_t huge_pages = 0;        // blocks stored raw
  std::uint64_t huge_pages_since = 0;  // raw stores since init, cumulative
};

struct IoStat {
  std::uint64_t failed_reads = 0;
  std::uint64_t failed_writes = 0;
  std::uint64_t notify_free = 0;  // blocks freed by discard / write-zeroes / free notify
};

struct BdStat {
  std::uint64_t bd_count = 0;  // blocks currently on the backing device (4 KiB units)
  std::uint64_t bd_reads = 0;
  std::uint64_t bd_writes = 0;
  // uzram, not in the kernel's bd_stat line (debug_stat shows it): blocks whose writeback
  // write or fdatasync failed; each kept its RAM copy.
  std::uint64_t failed_writebacks = 0;
  // uzram: the backing tier (debug_stat shows these too; docs/store-postprocessing.md).
  // bd_count counts written-back blocks of the store; with compressed_writeback they are
  // packed, several per 4 KiB block of the backing tier: backing_blocks is what they take.
  std::uint64_t backing_blocks = 0;        // blocks of the backing tier holding written-back data
  std::uint64_t backing_bytes = 0;         // bytes of written-back data in them
  std::uint64_t compacted = 0;             // packed objects moved by writeback_compact
  std::uint64_t trimmed = 0;               // blocks trimmed on a remote backing tier
  std::uint64_t lost_blocks = 0;           // blocks a remote lost (restarted empty): reads fail
  std::uint64_t failed_backing_reads = 0;  // reads of written-back blocks that failed
  std::uint64_t reconnects = 0;            // a remote backing tier's reconnections
  bool connected = false;                  // a backing tier is there and reachable
};

// Blocks moved by Store::read / Store::write (successful ones), since the store was
// created: a reset does not clear them.
struct IoCounts {
  std::uint64_t blocks_read = 0;
  std::uint64_t blocks_written = 0;
};

// Multi-page compression units (the unit_stat attribute; docs/units.md, docs/store.md):
// all zero on a store of 4 KiB units.
struct UnitStat {
  std::uint64_t units = 0;          // unit objects stored now (raw ones included)
  std::uint64_t whole_reads = 0;    // whole-unit reads (one decompression into the caller's buffer)
  std::uint64_t partial_reads = 0;  // block reads of a unit's member
  std::uint64_t cache_hits = 0;     // partial reads served from a stream's decoded-unit cache
  std::uint64_t rmw_writes = 0;     // partial writes (and discards) that re-encoded the unit
  std::uint64_t split_writes = 0;   // partial writes (and discards) that split the unit
  std::uint64_t splits = 0;         // units split into 4 KiB blocks, by any cause
};

// Where one store's resident memory is, in bytes (Store::memory(); uzram/memory.h says
// how each is measured).
struct StoreMemory {
  std::uint64_t pool_frames = 0;       // resident frames in zspages
  std::uint64_t pool_idle_frames = 0;  // resident frames in no zspage (idle, prefaulted)
  std::uint64_t pool_metadata = 0;     // the pool's tables
  std::uint64_t slot_table = 0;        // written pages of the slot table, and its summary
  std::uint64_t streams = 0;           // compression streams: buffers and codec contexts
  std::uint64_t total() const noexcept {
    return pool_frames + pool_idle_frames + pool_metadata + slot_table + streams;
  }
};

// One attribute's properties (Store::attr_info).
struct AttrInfo {
  bool readable = false;
  bool writable = false;
  // Configuration the kernel takes only before disksize (comp_algorithm,
  // algorithm_params, recomp_algorithm, backing_dev, compressed_writeback): once the store
  // is initialised, writing it fails with Errc::busy.
  bool before_init = false;
  // A write-only action whose value only says "do it" (compact): an empty value means 1.
  bool trigger = false;
};

// How a store takes its memory (Store::create).
struct StoreOptions {
  // A store that serves swap (`uzram serve --swap`, docs/uzram-serve.md#swap): all the
  // memory it needs is taken at disksize, so that storing a block never waits for the
  // kernel to find a page (which, under memory pressure, could wait for swap: for this
  // store). mem_limit must be set before disksize (else disksize fails with
  // invalid_argument): the pool is sized for it plus kSwapPoolSlack (for writers that
  // overshoot it; allocations beyond fail as at mem_limit) and all its frames are made
  // resident at disksize (no_memory if the kernel cannot give them); it keeps every frame
  // it frees (no decay), maps the handle entries of one object per block, and starts its
  // background threads then. While initialised, mem_limit can be lowered but not cleared
  // (0) or raised above the size the pool was given (invalid_argument; reset and set
  // disksize again to resize).
  bool swap = false;
  // The compression streams' idle release (docs/store.md#streams): a stream not taken for
  // this many milliseconds (up to twice that) gives back its codec's contexts and its unit
  // buffers; the next use makes them anew. 0: only when the last user closes
  // (Store::close_user), which always does. Ignored for a swap store, whose streams stay
  // warm.
  std::uint32_t stream_idle_ms = 1000;
};
// What a swap store's pool holds beyond mem_limit: the zspages of writers that allocated
// before they saw the limit (it is checked after allocating, as in the kernel).
inline constexpr std::uint64_t kSwapPoolSlack = std::uint64_t{4} << 20;

class Store {
 public:
  // An uninitialised store named `name` (the "zramN" of messages and `uzram status`).
  [[nodiscard]] static Result<std::unique_ptr<Store>> create(
      std::string name = "zram0", const StoreOptions& options = {}) noexcept;
  virtual ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // ---- Control surface: /sys/block/zramN ------------------------------------------
  // Writes an attribute with the kernel's grammar, e.g. ("disksize", "1G"),
  // ("comp_algorithm", "zstd"), ("algorithm_params", "algo=zstd level=8"),
  // ("mem_limit", "512M"), ("idle", "all"), ("writeback", "type=huge_idle"),
  // ("recompress", "type=huge threshold=3000"), ("compact", "1"), ("reset", "1").
  // A trigger attribute (compact) given no value means "1"; reset, which discards every
  // stored block, needs its value as in the kernel. Refuses what the kernel refuses, with
  // the kernel's error (busy, invalid_argument, ...); `message`, when given, receives a
  // one-line explanation naming the attribute.
  [[nodiscard]] Result<void> write_attr(std::string_view name, std::string_view value,
                                        std::string* message = nullptr) noexcept;
  // Reads an attribute in the kernel's exact text format (trailing newline included), e.g.
  // mm_stat, io_stat, bd_stat, debug_stat, comp_algorithm, recomp_algorithm, disksize,
  // initstate, backing_dev, writeback_limit, writeback_limit_enable, mem_limit; and
  // block_state (debugfs) and classes (the pool's debugfs table).
  [[nodiscard]] Result<std::string> read_attr(std::string_view name,
                                              std::string* message = nullptr) const noexcept;
  // Attribute names, readable and writable.
  static std::vector<std::string> attr_names() noexcept;
  // What an attribute is (std::nullopt for an unknown name): front ends write the
  // before_init ones before disksize (`uzram serve -o`), and a write-only attribute given
  // without a value (`uzram ctl compact`).
  static std::optional<AttrInfo> attr_info(std::string_view name) noexcept;
  // Whether an attribute can be read / written (false for unknown names).
  static bool attr_readable(std::string_view name) noexcept;
  static bool attr_writable(std::string_view name) noexcept;

  // ---- Users: the kernel's open count ---------------------------------------------------
  // A user serves the device to others at a size it read once (an NBD connection in
  // transmission). While any user is open, `reset` and `disksize` fail with Errc::busy and
  // a message saying so (the kernel refuses to reset an opened zram device), so a user's
  // size and data never change under it. open_user returns the disksize the user must
  // serve; it and those two writes are ordered by the init lock, so a user opened while a
  // reset runs sees either the device before it (and the reset fails) or after it.
  // Errors: not_initialized (no disksize yet: nothing to serve). Every successful
  // open_user is paired with one close_user. The close_user that leaves no user open gives
  // back the streams' memory and the pool's idle frames (not for a swap store;
  // docs/store.md#streams); call it with no lock of this store held.
  [[nodiscard]] Result<std::uint64_t> open_user() noexcept;
  void close_user() noexcept;
  [[nodiscard]] std::uint64_t users() const noexcept;  // open users now

  // ---- Block I/O (index = block number, 4 KiB each) ----------------------------------
  // `block` must be 8-byte aligned (blocks are scanned as 64-bit words for the
  // same-filled test and filled word by word).
  // Errors: not_initialized, out_of_range, no_memory / limit_reached (write: the old
  // contents of the block stay intact), codec_failed, io_error (backing device).
  [[nodiscard]] Result<void> write(std::uint64_t index, const void* block) noexcept;
  [[nodiscard]] Result<void> read(std::uint64_t index, void* block) noexcept;
  // `count` consecutive blocks from `index` (count * 4096 bytes, 8-byte aligned). On a
  // store with units (unit_size above 4K), the aligned whole units inside the range are
  // written as units and read with one decompression each; the rest goes block by block.
  // Not atomic: on an error, blocks before the failing one may already hold the new data
  // (a failed block keeps its old contents, as with write).
  [[nodiscard]] Result<void> write_blocks(std::uint64_t index, std::uint64_t count,
                                          const void* data) noexcept;
  [[nodiscard]] Result<void> read_blocks(std::uint64_t index, std::uint64_t count,
                                         void* data) noexcept;
  // Frees every whole block in [offset, offset + len) (partial blocks are skipped, as
  // zram does); discard and write-zeroes are the same operation.
  [[nodiscard]] Result<void> discard(std::uint64_t offset, std::uint64_t len) noexcept;
  // The swap free notification: frees the block if its lock is free, else counts a
  // miss_free and leaves it (never blocks).
  void slot_free_notify(std::uint64_t index) noexcept;
  // True when the block holds nothing (never written, or discarded): reads return zeros.
  [[nodiscard]] bool is_unallocated(std::uint64_t index) const noexcept;
  // True when the block is stored as a repeated 8-byte word (reads return that pattern).
  [[nodiscard]] bool is_same_filled(std::uint64_t index,
                                    std::uint64_t* word = nullptr) const noexcept;

  // ---- Observation -------------------------------------------------------------------
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] bool initialized() const noexcept;
  [[nodiscard]] std::uint64_t disksize() const noexcept;
  // The compression unit in bytes (the unit_size attribute): 4096 (default), 16384, 32768
  // or 65536.
  [[nodiscard]] std::uint64_t unit_size() const noexcept;
  [[nodiscard]] UnitStat unit_stat() const noexcept;
  [[nodiscard]] MmStat mm_stat() const noexcept;
  [[nodiscard]] IoStat io_stat() const noexcept;
  [[nodiscard]] BdStat bd_stat() const noexcept;
  [[nodiscard]] std::uint64_t miss_free() const noexcept;
  [[nodiscard]] IoCounts io_counts() const noexcept;
  [[nodiscard]] StoreMemory memory() const noexcept;          // mincore over the store's mappings
  [[nodiscard]] std::string comp_algorithm() const noexcept;  // the primary algorithm
  [[nodiscard]] unsigned streams() const noexcept;            // compression streams
  // The pool (null until initialised). For statistics; do not free its handles.
  [[nodiscard]] const Pool* pool() const noexcept;
  // True once a StoreRegistry removed the store (hot_remove): it stays uninitialised, and
  // every attribute write fails with ENODEV (uzram/store_registry.h).
  [[nodiscard]] bool retired() const noexcept;
  // Walks every slot and the pool and aborts on inconsistency. Quiescent stores only.
  void check_invariants() const noexcept;

  // ---- Log ------------------------------------------------------------------------------
  // Where the store reports what it decides by itself (the policy's rounds and memory
  // reactions, their failures): one line per call, no trailing newline. None by default
  // (`uzram serve -v` sets one). The hook runs on the store's background worker, with store
  // locks held: it must return promptly and must not call into this store. After
  // set_log_hook returns, the previous hook is no longer running or called; an empty hook
  // removes it.
  using LogHook = std::function<void(std::string_view line)>;
  void set_log_hook(LogHook hook) noexcept;

 protected:
  Store() = default;
};

// memparse: "4096", "64K", "512M", "1G", "2T" (binary units, case-insensitive), as the
// kernel parses disksize and mem_limit. Errors: invalid_argument.
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_H_
