// uzram/memory.h - where the process's resident memory goes: the `memory` attribute
// (docs/store.md#memory), `uzram status`'s memory columns and the metrics.
//
// The breakdown is process-wide: every live Store contributes its lines, prefixed with its
// name ("zram0.pool_frames"); other parts of the program add lines of their own with
// add_memory_source() (`uzram serve` adds the NBD server's `nbd_buffers`); then come
// `heap`, `libraries` and last `rss`:
//
//   zramN.pool_frames       resident frames in zspages                      (mincore)
//   zramN.pool_idle_frames  resident frames in no zspage: idle, prefaulted  (mincore)
//   zramN.pool_metadata     handle table, zspage descriptors, frame table   (mincore)
//   zramN.slot_table        written pages of the slot table, its summary    (mincore)
//   zramN.streams           compression streams: buffers, codec contexts    (allocated)
//   <source lines>          e.g. nbd_buffers: request and reply buffers     (allocated)
//   heap                    the rest of the anonymous memory: malloc's heap and arenas
//                           (free chunks it keeps included), thread stacks, the
//                           dictionaries of codecs
//   libraries               file-backed mappings: the program, shared libraries (their
//                           relocated data included), locale files          (smaps Rss)
//   rss                     VmRSS of /proc/self/status
//
// heap is derived, and only within the anonymous memory: the Rss of every anonymous
// mapping (smaps) minus the lines measured above (the mincore ones are pages of those
// mappings; the allocated ones live in the malloc heap). So the lines sum to the Rss that
// smaps sees, which differs from VmRSS only by the kernel's per-CPU counter slack and
// what changed between the two reads.
#ifndef UZRAM_MEMORY_H_
#define UZRAM_MEMORY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "uzram/result.h"

namespace uzram {

struct MemoryLine {
  std::string name;  // e.g. "zram0.pool_frames", "nbd_buffers", "heap", "rss"
  std::uint64_t bytes = 0;
};

// Appends lines for bytes that the caller allocated on the heap (malloc / new), which
// the breakdown then takes out of `heap`. Called with the breakdown's lock held: it must
// not block, nor read the memory breakdown itself.
using MemorySourceFn = std::function<void(std::vector<MemoryLine>*)>;

// Keeps a source registered while it lives.
class MemorySourceHandle {
 public:
  MemorySourceHandle() noexcept = default;
  ~MemorySourceHandle() { reset(); }
  MemorySourceHandle(MemorySourceHandle&& o) noexcept : id_(o.id_) { o.id_ = 0; }
  MemorySourceHandle& operator=(MemorySourceHandle&& o) noexcept;
  MemorySourceHandle(const MemorySourceHandle&) = delete;
  MemorySourceHandle& operator=(const MemorySourceHandle&) = delete;
  void reset() noexcept;  // unregisters (waits for a breakdown that is calling it)

 private:
  friend Result<MemorySourceHandle> add_memory_source(MemorySourceFn fn) noexcept;
  std::uint64_t id_ = 0;
};

// Registers fn until the handle goes. Errors: no_memory.
[[nodiscard]] Result<MemorySourceHandle> add_memory_source(MemorySourceFn fn) noexcept;

// The breakdown now, in the order above. Errors: what reading /proc/self failed with.
[[nodiscard]] Result<std::vector<MemoryLine>> memory_breakdown() noexcept;
// "name bytes\n" per line.
[[nodiscard]] std::string format_memory(const std::vector<MemoryLine>& lines);

}  // namespace uzram

#endif  // UZRAM_MEMORY_H_
