// nbd/store_backend.cc - byte-granular I/O over the store's 4 KiB blocks.
#include "nbd/store_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "nbd/protocol.h"
#include "uzram/store.h"

namespace uzram::nbd {
namespace {

std::uint32_t to_nbd(const std::error_code& ec) noexcept {
  if (ec == Errc::no_memory || ec == Errc::limit_reached) return kEnospc;
  if (ec == Errc::out_of_range || ec == Errc::invalid_argument) return kEinval;
  return kEio;
}

alignas(64) const std::uint8_t kZeroBlock[kBlockSize] = {};

// Store::read/write access blocks as 64-bit words: they need 8-byte-aligned buffers.
bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % alignof(std::uint64_t) == 0; }

}  // namespace

std::uint64_t StoreBackend::size() const noexcept { return store_.disksize(); }

bool StoreBackend::open_user(std::uint64_t* size) noexcept {
  auto r = store_.open_user();
  if (!r) return false;
  *size = *r;
  return true;
}

void StoreBackend::close_user() noexcept { store_.close_user(); }

std::uint32_t StoreBackend::read(std::uint64_t offset, std::uint32_t len, void* buf) noexcept {
  auto* out = static_cast<std::uint8_t*>(buf);
  alignas(64) std::uint8_t tmp[kBlockSize];
  while (len > 0) {
    const std::uint64_t index = offset / kBlockSize;
    const std::size_t at = offset % kBlockSize;
    const std::size_t n = std::min<std::size_t>(kBlockSize - at, len);
    if (n == kBlockSize && aligned(out)) {
      if (auto r = store_.read(index, out); !r) return to_nbd(r.error());
    } else {
      if (auto r = store_.read(index, tmp); !r) return to_nbd(r.error());
      std::memcpy(out, tmp + at, n);
    }
    out += n;
    offset += n;
    len -= static_cast<std::uint32_t>(n);
  }
  return 0;
}

std::uint32_t StoreBackend::patch(std::uint64_t index, std::size_t at, std::size_t n,
                                  const void* src) noexcept {
  std::lock_guard lock(stripe(index));
  if (n == kBlockSize && aligned(src)) {
    auto r = store_.write(index, src);
    return r ? 0 : to_nbd(r.error());
  }
  alignas(64) std::uint8_t tmp[kBlockSize];
  if (n < kBlockSize) {
    if (auto r = store_.read(index, tmp); !r) return to_nbd(r.error());
  }
  std::memcpy(tmp + at, src, n);
  auto r = store_.write(index, tmp);
  return r ? 0 : to_nbd(r.error());
}

std::uint32_t StoreBackend::write(std::uint64_t offset, std::uint32_t len, const void* buf) noexcept {
  const auto* in = static_cast<const std::uint8_t*>(buf);
  while (len > 0) {
    const std::size_t at = offset % kBlockSize;
    const std::size_t n = std::min<std::size_t>(kBlockSize - at, len);
    if (std::uint32_t e = patch(offset / kBlockSize, at, n, in)) return e;
    in += n;
    offset += n;
    len -= static_cast<std::uint32_t>(n);
  }
  return 0;
}

std::uint32_t StoreBackend::free_block(std::uint64_t index) noexcept {
  std::lock_guard lock(stripe(index));
  auto r = store_.discard(index * kBlockSize, kBlockSize);
  return r ? 0 : to_nbd(r.error());
}

std::uint32_t StoreBackend::trim(std::uint64_t offset, std::uint32_t len) noexcept {
  // Advisory: only whole blocks are freed; partial head and tail keep their data.
  const std::uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
  const std::uint64_t end = (offset + len) / kBlockSize;
  for (std::uint64_t i = first; i < end; i++) {
    if (std::uint32_t e = free_block(i)) return e;
  }
  return 0;
}

std::uint32_t StoreBackend::zero(std::uint64_t offset, std::uint32_t len, bool no_hole) noexcept {
  while (len > 0) {
    const std::size_t at = offset % kBlockSize;
    const std::size_t n = std::min<std::size_t>(kBlockSize - at, len);
    const std::uint64_t index = offset / kBlockSize;
    // A whole block becomes a hole, or with NO_HOLE a stored zero-filled block (metadata
    // only in the store: no compression, no pool memory).
    const std::uint32_t e = (n == kBlockSize && !no_hole) ? free_block(index) : patch(index, at, n, kZeroBlock);
    if (e) return e;
    offset += n;
    len -= static_cast<std::uint32_t>(n);
  }
  return 0;
}

std::uint32_t StoreBackend::block_status(std::uint64_t offset, std::uint32_t len, Extent* out,
                                         std::size_t max_extents, std::size_t* count) noexcept {
  std::size_t n_out = 0;
  while (len > 0) {
    const std::uint64_t index = offset / kBlockSize;
    const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBlockSize - offset % kBlockSize, len));
    std::uint32_t flags = 0;
    std::uint64_t word = 1;
    if (store_.is_unallocated(index)) {
      flags = kStateHole | kStateZero;
    } else if (store_.is_same_filled(index, &word) && word == 0) {
      flags = kStateZero;
    }
    if (n_out > 0 && out[n_out - 1].flags == flags) {
      out[n_out - 1].length += n;
    } else {
      if (n_out == max_extents) break;
      out[n_out++] = {n, flags};
    }
    offset += n;
    len -= n;
  }
  *count = n_out;
  return 0;
}

}  // namespace uzram::nbd
