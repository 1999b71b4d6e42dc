// nbd/io_buffers.cc - data buffers that go back to the kernel (io_buffers.h).
#include "nbd/io_buffers.h"

#include <sys/mman.h>

#include <new>

#include "nbd/stats.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kPage = 4096;

}  // namespace

std::size_t io_buffer_bytes(std::size_t n) noexcept {
  return n < kMapThreshold ? n : (n + kPage - 1) / kPage * kPage;
}

std::uint8_t* map_buffer(std::size_t n, ServerStats* stats) noexcept {
  const std::size_t bytes = io_buffer_bytes(n);
  std::uint8_t* p;
  if (n < kMapThreshold) {
    p = new (std::nothrow) std::uint8_t[n ? n : 1];
  } else {
    void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p = m == MAP_FAILED ? nullptr : static_cast<std::uint8_t*>(m);
  }
  if (p && stats) stats->buffers_allocated(bytes);
  return p;
}

void unmap_buffer(std::uint8_t* p, std::size_t n, ServerStats* stats) noexcept {
  if (!p) return;
  const std::size_t bytes = io_buffer_bytes(n);
  if (n < kMapThreshold) {
    delete[] p;
  } else {
    ::munmap(p, bytes);
  }
  if (stats) stats->buffers_freed(bytes);
}

std::uint8_t* IoBufferCache::take(std::size_t n) noexcept {
  const std::size_t bytes = io_buffer_bytes(n);
  for (std::size_t i = count_; i-- > 0;) {  // the most recently kept first
    if (size_[i] != bytes) continue;
    std::uint8_t* p = buf_[i];
    count_--;
    buf_[i] = buf_[count_];
    size_[i] = size_[count_];
    bytes_ -= bytes;
    return p;
  }
  return nullptr;
}

bool IoBufferCache::keep(std::uint8_t* p, std::size_t n) noexcept {
  const std::size_t bytes = io_buffer_bytes(n);
  if (n < kMapThreshold || count_ == kCacheEntries || bytes_ + bytes > kCacheBytes) return false;
  buf_[count_] = p;
  size_[count_] = bytes;
  count_++;
  bytes_ += bytes;
  return true;
}

std::size_t IoBufferCache::drain(std::uint8_t* out[kCacheEntries],
                                 std::size_t sizes[kCacheEntries]) noexcept {
  const std::size_t n = count_;
  for (std::size_t i = 0; i < n; i++) {
    out[i] = buf_[i];
    sizes[i] = size_[i];
  }
  count_ = 0;
  bytes_ = 0;
  return n;
}

}  // namespace uzram::nbd
