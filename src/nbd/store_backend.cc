// nbd/store_backend.cc - byte-granular I/O over the store's 4 KiB blocks.
#include "nbd/store_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "nbd/protocol.h"
#include "sync/bit_lock.h"
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
bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(std::uint64_t) == 0;
}

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
  StripeGuard lock(*this, index);
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

std::uint32_t StoreBackend::write(std::uint64_t offset, std::uint32_t len,
                                  const void* buf) noexcept {
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

StoreBackend::StripeGuard::StripeGuard(StoreBackend& b, std::uint64_t block) noexcept
    : word_(b.stripes_[block % kStripes / kStripeBits]), bit_(1u << (block % kStripeBits)) {
  lockdep::acquire(LockLevel::nbd_stripe, LockKind::sleepable, &word_, "nbd_stripe", false, false,
                   SiteLoc::current());
  bit_lock(word_, bit_);
}

StoreBackend::StripeGuard::~StripeGuard() {
  lockdep::release(&word_, SiteLoc::current());
  bit_unlock(word_, bit_);
}

// Frees whole blocks [first, end) with one store discard per chunk of at most kStripes
// blocks, holding the chunk's stripes meanwhile: consecutive blocks fall on distinct
// stripes, so the chunk holds exactly the stripe of each of its blocks, and a partial
// write (read-modify-write under its block's stripe) runs wholly before or after the
// discard of that block - never around it. The stripe words are taken in increasing
// index order (only a chunk holds more than one), so two discards cannot deadlock; a
// partial write waits at most for one chunk's discard (4 MiB of blocks).
std::uint32_t StoreBackend::free_blocks(std::uint64_t first, std::uint64_t end) noexcept {
  while (first < end) {
    const std::uint64_t n = std::min<std::uint64_t>(end - first, kStripes);
    std::uint32_t masks[kStripes / kStripeBits] = {};
    for (std::uint64_t b = first; b < first + n; b++) {
      masks[b % kStripes / kStripeBits] |= 1u << (b % kStripeBits);
    }
    // The chunk's stripes are one lock to the checker (named by this backend): they are
    // taken together, in word order.
    lockdep::acquire(LockLevel::nbd_stripe, LockKind::sleepable, this, "nbd_stripe (chunk)", false,
                     false, SiteLoc::current());
    for (std::size_t w = 0; w < stripes_.size(); w++) {
      if (masks[w]) bits_lock(stripes_[w], masks[w]);
    }
    auto r = store_.discard(first * kBlockSize, n * kBlockSize);
    for (std::size_t w = stripes_.size(); w-- > 0;) {
      if (masks[w]) bit_unlock(stripes_[w], masks[w]);
    }
    lockdep::release(this, SiteLoc::current());
    if (!r) return to_nbd(r.error());
    first += n;
  }
  return 0;
}

std::uint32_t StoreBackend::trim(std::uint64_t offset, std::uint32_t len) noexcept {
  // Advisory: only whole blocks are freed; partial head and tail keep their data.
  const std::uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
  const std::uint64_t end = (offset + len) / kBlockSize;
  return first < end ? free_blocks(first, end) : 0;
}

std::uint32_t StoreBackend::zero(std::uint64_t offset, std::uint32_t len, bool no_hole) noexcept {
  while (len > 0) {
    const std::size_t at = offset % kBlockSize;
    const std::uint64_t index = offset / kBlockSize;
    std::uint32_t e;
    std::uint64_t n;
    if (at == 0 && len >= kBlockSize && !no_hole) {
      // Whole blocks become holes, all of them in one go.
      const std::uint64_t blocks = len / kBlockSize;
      e = free_blocks(index, index + blocks);
      n = blocks * kBlockSize;
    } else {
      // A partial block, or with NO_HOLE a stored zero-filled block (metadata only in the
      // store: no compression, no pool memory).
      n = std::min<std::size_t>(kBlockSize - at, len);
      e = patch(index, at, static_cast<std::size_t>(n), kZeroBlock);
    }
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
    const std::uint32_t n =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(kBlockSize - offset % kBlockSize, len));
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
