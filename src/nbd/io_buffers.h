// nbd/io_buffers.h - where an on-demand session's data buffers (WRITE payloads, READ
// replies, block status extent lists) come from, so that they go back to the kernel after
// a burst instead of staying resident in a malloc arena.
//
// Why: glibc serves an allocation of at least M_MMAP_THRESHOLD (128 KiB at start) with
// mmap, but the first time such a chunk is freed it raises the threshold to its size (the
// "dynamic threshold"), and from then on 256 KiB requests (nbdcopy's) come from the
// per-thread arenas, whose free memory is not returned: measured, 7.1 MiB of freed request
// buffers resident after nbdcopy wrote 128 MiB (docs/benchmarks.md, "Compression units").
//
// So: buffers below kMapThreshold come from the heap as before (they coalesce and are
// reused); larger ones are mapped directly (mmap, page-rounded) and unmapped when given
// back - except that up to kCacheEntries of them (kCacheBytes in all) are kept by the
// session for the next request of the same size while it has requests in flight, and all
// are unmapped once it has none (drain()). A burst therefore maps and unmaps little, and
// nothing of it stays after the burst.
//
// IoBufferCache is the kept list; not thread-safe: the session calls it under its own
// mutex, and maps and unmaps outside it (map_buffer / unmap_buffer).
#ifndef UZRAM_NBD_IO_BUFFERS_H_
#define UZRAM_NBD_IO_BUFFERS_H_

#include <cstddef>
#include <cstdint>

namespace uzram::nbd {

class ServerStats;

inline constexpr std::size_t kMapThreshold = std::size_t{64} << 10;
inline constexpr std::size_t kCacheEntries = 8;
inline constexpr std::size_t kCacheBytes = std::size_t{2} << 20;

// The bytes a buffer of n bytes takes: n below kMapThreshold, else n rounded up to pages.
[[nodiscard]] std::size_t io_buffer_bytes(std::size_t n) noexcept;

// A buffer of n bytes (heap below kMapThreshold, else a fresh mapping), counted in
// stats' buffer bytes (stats may be null); nullptr when memory is short.
[[nodiscard]] std::uint8_t* map_buffer(std::size_t n, ServerStats* stats) noexcept;
// Gives back what map_buffer(n) returned (p may be null).
void unmap_buffer(std::uint8_t* p, std::size_t n, ServerStats* stats) noexcept;

class IoBufferCache {
 public:
  IoBufferCache() noexcept = default;
  IoBufferCache(const IoBufferCache&) = delete;
  IoBufferCache& operator=(const IoBufferCache&) = delete;

  // A kept buffer for a request of n bytes (n >= kMapThreshold), or nullptr.
  [[nodiscard]] std::uint8_t* take(std::size_t n) noexcept;
  // Keeps p (map_buffer(n), n >= kMapThreshold) when there is room; false: unmap it.
  [[nodiscard]] bool keep(std::uint8_t* p, std::size_t n) noexcept;
  // Moves every kept buffer to out[0..count), its request size to sizes[]; returns count.
  std::size_t drain(std::uint8_t* out[kCacheEntries], std::size_t sizes[kCacheEntries]) noexcept;
  [[nodiscard]] std::size_t kept_bytes() const noexcept { return bytes_; }

 private:
  std::uint8_t* buf_[kCacheEntries] = {};
  std::size_t size_[kCacheEntries] = {};  // page-rounded
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_IO_BUFFERS_H_
