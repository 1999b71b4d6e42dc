// nbd/store_backend.h - Backend: what the NBD session asks of storage, byte-granular;
// StoreBackend implements it over a uzram::Store of 4 KiB blocks, grouped in compression
// units of unit_size bytes (N = unit_size / 4096 blocks; N = 1 on a 4 KiB store;
// docs/units.md#served-and-planned). Knows nothing of sockets.
//
// The whole blocks of a READ go to the store in one read_blocks call; those of a WRITE
// (and of a WRITE_ZEROES with NO_HOLE) in one write_blocks call per unit, so a whole
// unit is stored as a unit. Partial blocks are read-modify-written under a striped
// per-unit lock (stripe (block / N) % kStripes), and every block write or discard takes
// the stripe of its unit, so two concurrent requests touching one unit never lose each
// other's bytes, and a whole-unit write never falls between the read and the write of a
// partial one. A stripe is one bit of an atomic word (sync/bit_lock.h), so a multi-block
// trim or write-zeroes takes the stripes of up to kStripes consecutive units with one
// compare-and-swap per 32 of them and discards those blocks in one store call. Errors are
// NBD error numbers (nbd/protocol.h), 0 = ok.
#ifndef UZRAM_NBD_STORE_BACKEND_H_
#define UZRAM_NBD_STORE_BACKEND_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace uzram {
class Store;
}

namespace uzram::nbd {

struct Extent {
  std::uint32_t length;
  std::uint32_t flags;  // kStateHole | kStateZero
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::uint64_t size() const noexcept = 0;
  virtual bool can_trim() const noexcept { return true; }
  virtual bool can_zero() const noexcept { return true; }
  virtual bool can_fast_zero() const noexcept { return true; }
  virtual bool can_flush() const noexcept { return true; }
  virtual bool can_fua() const noexcept { return true; }
  virtual bool can_multi_conn() const noexcept { return true; }
  virtual bool parallel() const noexcept { return true; }  // else: serialize requests
  // NBD_INFO_BLOCK_SIZE's preferred size: the unit a request should cover to be cheapest.
  virtual std::uint32_t preferred_block_size() const noexcept { return 4096; }

  // A connection enters transmission: the backend counts it as a user until close_user
  // (a store then refuses reset and disksize) and gives the size to serve, fixed while the
  // user is open. False: nothing to serve (an uninitialised store).
  virtual bool open_user(std::uint64_t* size) noexcept {
    *size = this->size();
    return true;
  }
  virtual void close_user() noexcept {}

  virtual std::uint32_t read(std::uint64_t offset, std::uint32_t len, void* buf) noexcept = 0;
  virtual std::uint32_t write(std::uint64_t offset, std::uint32_t len,
                              const void* buf) noexcept = 0;
  virtual std::uint32_t flush() noexcept { return 0; }
  virtual std::uint32_t trim(std::uint64_t offset, std::uint32_t len) noexcept = 0;
  // no_hole: the range must read back as zeros and stay allocated.
  virtual std::uint32_t zero(std::uint64_t offset, std::uint32_t len, bool no_hole) noexcept = 0;
  // Extents covering [offset, offset + len) from its start, merged, at most max_extents of
  // them, into out[0..*count).
  virtual std::uint32_t block_status(std::uint64_t offset, std::uint32_t len, Extent* out,
                                     std::size_t max_extents, std::size_t* count) noexcept = 0;
};

class StoreBackend final : public Backend {
 public:
  explicit StoreBackend(Store& store) noexcept : store_(store) {}
  // Holds the store for as long as the backend lives (StoreExports).
  explicit StoreBackend(std::shared_ptr<Store> store) noexcept
      : owner_(std::move(store)), store_(*owner_) {}
  std::uint64_t size() const noexcept override;                  // the store's disksize now
  std::uint32_t preferred_block_size() const noexcept override;  // the store's unit_size
  bool open_user(std::uint64_t* size) noexcept override;         // Store::open_user
  void close_user() noexcept override;
  std::uint32_t read(std::uint64_t offset, std::uint32_t len, void* buf) noexcept override;
  std::uint32_t write(std::uint64_t offset, std::uint32_t len, const void* buf) noexcept override;
  std::uint32_t trim(std::uint64_t offset, std::uint32_t len) noexcept override;
  std::uint32_t zero(std::uint64_t offset, std::uint32_t len, bool no_hole) noexcept override;
  std::uint32_t block_status(std::uint64_t offset, std::uint32_t len, Extent* out,
                             std::size_t max_extents, std::size_t* count) noexcept override;

 private:
  static constexpr std::size_t kStripes = 1024;
  static constexpr std::size_t kStripeBits = 32;  // stripes per lock word
  // Holds the stripe of one unit (a partial block write, or a whole unit's).
  class StripeGuard {
   public:
    StripeGuard(StoreBackend& b, std::uint64_t unit) noexcept;
    ~StripeGuard();
    StripeGuard(const StripeGuard&) = delete;
    StripeGuard& operator=(const StripeGuard&) = delete;

   private:
    std::atomic<std::uint32_t>& word_;
    std::uint32_t bit_;
  };
  // Blocks per unit of the store now (fixed while a user is open: unit_size changes only
  // after a reset, which users prevent).
  std::uint64_t blocks_per_unit() const noexcept;
  // Writes bytes [at, at + n) of block `index` (n < block size: read-modify-write).
  std::uint32_t patch(std::uint64_t index, std::size_t at, std::size_t n, const void* src) noexcept;
  // Writes whole blocks [first, end) from `src` (8-byte aligned; stride 4096, or 0: every
  // block from the same zero unit), one write_blocks call per unit under its stripe.
  std::uint32_t write_whole(std::uint64_t first, std::uint64_t end, const std::uint8_t* src,
                            bool zeros) noexcept;
  // Discards whole blocks [first, end) under their units' stripes (see store_backend.cc).
  std::uint32_t free_blocks(std::uint64_t first, std::uint64_t end) noexcept;

  const std::shared_ptr<Store> owner_;  // null when the caller owns the store
  Store& store_;
  // The stripe locks: bit s % 32 of word s / 32 is the lock of every block b with
  // (b / N) % kStripes == s (all the blocks of a unit share its stripe). Level: nbd_stripe (before
  // every store lock). A set of bit locks in a word, taken together by a discard (bits_lock): no
  // capability the analysis can name, and they guard no field (they serialise the store calls made
  // under them), so StripeGuard and free_blocks() register them with the lock-order checker by
  // hand.
  std::array<std::atomic<std::uint32_t>, kStripes / kStripeBits> stripes_{};
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_STORE_BACKEND_H_
