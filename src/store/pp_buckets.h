// store/pp_buckets.h - PpBuckets: the post-processing candidate set of writeback and
// recompress (layer 3), zram's pp_ctl. Candidates are grouped by object size into 65
// buckets of 64 bytes (bucket = size / 64; a huge object, 4096 bytes, lands in bucket 64)
// and taken largest bucket first: writing back or recompressing a 3.9 KiB object frees
// more pool memory than a 48-byte one for the same cost. Within a bucket, slots come out
// in the order they were added (ascending slot index after a scan).
//
// The set holds slot indices only; the caller marks each slot PP_SLOT when it adds it and
// must clear PP_SLOT on every index it pops (processed or not), including the ones it
// pops to drain the set after an error.
//
// Thread safety: none; one post-processing pass owns its PpBuckets.
#ifndef UZRAM_STORE_PP_BUCKETS_H_
#define UZRAM_STORE_PP_BUCKETS_H_

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace uzram {

class PpBuckets {
 public:
  static constexpr unsigned kBucketBytes = 64;
  static constexpr unsigned kNumBuckets = 4096 / kBucketBytes + 1;  // 65

  static constexpr unsigned bucket_of(std::uint32_t size) noexcept {
    const unsigned b = size / kBucketBytes;
    return b < kNumBuckets ? b : kNumBuckets - 1;
  }

  // Adds a slot of `size` bytes. False when memory ran out (the slot was not added).
  [[nodiscard]] bool add(std::uint64_t index, std::uint32_t size) noexcept {
    Bucket& b = buckets_[bucket_of(size)];
    try {
      b.slots.push_back(index);
    } catch (const std::bad_alloc&) {
      return false;
    }
    count_++;
    return true;
  }

  // Takes the next slot, largest bucket first. False when the set is empty.
  [[nodiscard]] bool pop(std::uint64_t* index) noexcept {
    while (top_ > 0) {
      Bucket& b = buckets_[top_ - 1];
      if (b.next < b.slots.size()) {
        *index = b.slots[b.next++];
        count_--;
        return true;
      }
      b = Bucket{};  // drained: give its memory back early
      top_--;
    }
    return false;
  }

  [[nodiscard]] std::uint64_t size() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

 private:
  struct Bucket {
    std::vector<std::uint64_t> slots;
    std::size_t next = 0;
  };
  Bucket buckets_[kNumBuckets];
  unsigned top_ = kNumBuckets;  // buckets_[top_ .. kNumBuckets) are drained
  std::uint64_t count_ = 0;
};

}  // namespace uzram

#endif  // UZRAM_STORE_PP_BUCKETS_H_
