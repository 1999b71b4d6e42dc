// nbd/store_backend.cc - byte-granular I/O over the store's 4 KiB blocks and its units.
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

// The largest unit (64 KiB) of zeros: WRITE_ZEROES with NO_HOLE writes whole units from it.
constexpr std::size_t kMaxUnitBytes = 65536;
alignas(64) const std::uint8_t kZeroUnit[kMaxUnitBytes] = {};
const std::uint8_t* const kZeroBlock = kZeroUnit;

// Store::read/write access blocks as 64-bit words: they need 8-byte-aligned buffers.
bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(std::uint64_t) == 0;
}

}  // namespace

std::uint64_t StoreBackend::size() const noexcept { return store_.disksize(); }

std::uint32_t StoreBackend::preferred_block_size() const noexcept {
  return static_cast<std::uint32_t>(store_.unit_size());
}

std::uint64_t StoreBackend::blocks_per_unit() const noexcept {
  const std::uint64_t n = store_.unit_size() / kBlockSize;
  return n ? n : 1;
}

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
    if (at == 0 && len >= kBlockSize && aligned(out)) {
      // The whole blocks, in one call: whole units decompress once, into `out`.
      const std::uint64_t blocks = len / kBlockSize;
      if (auto r = store_.read_blocks(index, blocks, out); !r) return to_nbd(r.error());
      out += blocks * kBlockSize;
      offset += blocks * kBlockSize;
      len -= static_cast<std::uint32_t>(blocks * kBlockSize);
      continue;
    }
    const std::size_t n = std::min<std::size_t>(kBlockSize - at, len);
    if (auto r = store_.read(index, tmp); !r) return to_nbd(r.error());
    std::memcpy(out, tmp + at, n);
    out += n;
    offset += n;
    len -= static_cast<std::uint32_t>(n);
  }
  return 0;
}

std::uint32_t StoreBackend::patch(std::uint64_t index, std::size_t at, std::size_t n,
                                  const void* src) noexcept {
  StripeGuard lock(*this, index / blocks_per_unit());
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

// One write_blocks call per unit (or per piece of a unit the range covers only partly),
// each under its unit's stripe: the stripe is held for one unit's compression, never for
// a whole request, so concurrent streams of large writes do not queue behind each other
// (a request's run of stripes would collide with any other stream's run).
std::uint32_t StoreBackend::write_whole(std::uint64_t first, std::uint64_t end,
                                        const std::uint8_t* src, bool zeros) noexcept {
  const std::uint64_t per_unit = blocks_per_unit();
  while (first < end) {
    const std::uint64_t unit = first / per_unit;
    const std::uint64_t stop = std::min(end, (unit + 1) * per_unit);
    {
      StripeGuard lock(*this, unit);
      auto r = store_.write_blocks(first, stop - first, src);
      if (!r) return to_nbd(r.error());
    }
    if (!zeros) src += (stop - first) * kBlockSize;
    first = stop;
  }
  return 0;
}

std::uint32_t StoreBackend::write(std::uint64_t offset, std::uint32_t len,
                                  const void* buf) noexcept {
  const auto* in = static_cast<const std::uint8_t*>(buf);
  while (len > 0) {
    const std::size_t at = offset % kBlockSize;
    if (at == 0 && len >= kBlockSize && aligned(in)) {
      const std::uint64_t blocks = len / kBlockSize;
      const std::uint64_t index = offset / kBlockSize;
      if (std::uint32_t e = write_whole(index, index + blocks, in, false)) return e;
      in += blocks * kBlockSize;
      offset += blocks * kBlockSize;
      len -= static_cast<std::uint32_t>(blocks * kBlockSize);
      continue;
    }
    const std::size_t n = std::min<std::size_t>(kBlockSize - at, len);
    if (std::uint32_t e = patch(offset / kBlockSize, at, n, in)) return e;
    in += n;
    offset += n;
    len -= static_cast<std::uint32_t>(n);
  }
  return 0;
}

StoreBackend::StripeGuard::StripeGuard(StoreBackend& b, std::uint64_t unit) noexcept
    : word_(b.stripes_[unit % kStripes / kStripeBits]), bit_(1u << (unit % kStripeBits)) {
  lockdep::acquire(LockLevel::nbd_stripe, LockKind::sleepable, &word_, "nbd_stripe", false, false,
                   SiteLoc::current());
  bit_lock(word_, bit_);
}

StoreBackend::StripeGuard::~StripeGuard() {
  lockdep::release(&word_, SiteLoc::current());
  bit_unlock(word_, bit_);
}

// Frees whole blocks [first, end) with one store discard per chunk of at most kStripes
// units, holding the chunk's stripes meanwhile: consecutive units fall on distinct
// stripes, so the chunk holds exactly the stripe of each of its units, and a partial
// write (read-modify-write under its unit's stripe) runs wholly before or after the
// discard of that block - never around it. Chunks end on unit boundaries, so a unit the
// range covers whole is discarded whole (the store frees it at once). The stripe words
// are taken in increasing index order (only a chunk holds more than one), so two discards
// cannot deadlock; a partial write waits at most for one chunk's discard.
std::uint32_t StoreBackend::free_blocks(std::uint64_t first, std::uint64_t end) noexcept {
  const std::uint64_t per_unit = blocks_per_unit();
  while (first < end) {
    const std::uint64_t unit0 = first / per_unit;
    const std::uint64_t stop = std::min(end, (unit0 + kStripes) * per_unit);
    const std::uint64_t last_unit = (stop - 1) / per_unit;
    std::uint32_t masks[kStripes / kStripeBits] = {};
    for (std::uint64_t u = unit0; u <= last_unit; u++) {
      masks[u % kStripes / kStripeBits] |= 1u << (u % kStripeBits);
    }
    // The chunk's stripes are one lock to the checker (named by this backend): they are
    // taken together, in word order.
    lockdep::acquire(LockLevel::nbd_stripe, LockKind::sleepable, this, "nbd_stripe (chunk)", false,
                     false, SiteLoc::current());
    for (std::size_t w = 0; w < stripes_.size(); w++) {
      if (masks[w]) bits_lock(stripes_[w], masks[w]);
    }
    auto r = store_.discard(first * kBlockSize, (stop - first) * kBlockSize);
    for (std::size_t w = stripes_.size(); w-- > 0;) {
      if (masks[w]) bit_unlock(stripes_[w], masks[w]);
    }
    lockdep::release(this, SiteLoc::current());
    if (!r) return to_nbd(r.error());
    first = stop;
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
    if (at == 0 && len >= kBlockSize) {
      // Whole blocks, all of them in one go: holes, or with NO_HOLE stored zero-filled
      // (metadata only in the store: no compression, no pool memory), a unit at a time.
      const std::uint64_t blocks = len / kBlockSize;
      e = no_hole ? write_whole(index, index + blocks, kZeroUnit, true)
                  : free_blocks(index, index + blocks);
      n = blocks * kBlockSize;
    } else {
      n = std::min<std::size_t>(kBlockSize - at, len);  // a partial block
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
