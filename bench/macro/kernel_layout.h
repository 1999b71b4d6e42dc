// bench/macro/kernel_layout.h - what Linux zsmalloc's layout needs for a set of object
// sizes, computed from uzram::class_table(chain) (the kernel's class rules, chain 8 by
// default), so a measured pool can be compared with "the kernel would need F frames".
//
//   frames          = sum over classes of ceil(count / objs_per_zspage) * pages_per_zspage,
//                     each size first grown by the kernel's 8-byte in-object header (the
//                     huge class stores its objects header-less), exactly as zs_malloc
//                     does;
//   frames_headerless  the same without the header: uzram's layout;
//   kernel needs    = frames * 4096 + 8 bytes (the zs_handle slab object) per object: what
//                     issue 2's "kernel layout needs" counts (+2.97 % on the lognormal
//                     model at 1M objects);
//   slab_bytes_est  the kernel's metadata outside the frames: an 8-byte zs_handle slab
//                   object per object plus ~56 bytes of struct zspage per zspage
//                   (Linux 6.18's slab object sizes; an estimate).
// It also predicts which objects straddle a frame when a fresh pool is filled in order
// (object j of a class sits in slot j mod objs_per_zspage), with the kernel's header and
// without (uzram): only those may be copied by Pool::read_begin.
#ifndef UZRAM_BENCH_MACRO_KERNEL_LAYOUT_H_
#define UZRAM_BENCH_MACRO_KERNEL_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "uzram/pool.h"

namespace uzram::bench {

struct LayoutTotals {
  std::uint64_t objects = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t frames = 0;
  std::uint64_t zspages = 0;
  std::uint64_t huge_objects = 0;
  std::uint64_t frames_headerless = 0;
  std::uint64_t slab_bytes_est = 0;
  std::uint64_t spanning_objects = 0;             // with the header, filled in order
  std::uint64_t spanning_objects_headerless = 0;  // uzram's layout, filled in order
  std::uint64_t kernel_needs_bytes() const noexcept { return frames * 4096 + objects * 8; }
};

class KernelLayout {
 public:
  static constexpr unsigned kHeaderBytes = 8;
  static constexpr unsigned kZspageDescBytes = 56;

  explicit KernelLayout(unsigned chain_size = 8);
  void add(std::uint32_t size) noexcept;
  LayoutTotals totals() const noexcept;
  // Empty when class_table(chain 8) matches the kernel facts of Linux 6.18 mm/zsmalloc.c
  // (119 classes, huge_class_size 3625, sample rows in kernel_layout.cc); else why not.
  std::string check_against_kernel_facts() const;

 private:
  struct Class {
    ClassGeometry geo;
    std::uint64_t count = 0;             // objects (size + header) in this class
    std::uint64_t count_headerless = 0;  // objects (size alone) in this class
  };
  unsigned class_of(std::size_t bytes) const noexcept;

  unsigned chain_;
  std::vector<Class> classes_;       // smallest first
  std::vector<std::uint16_t> slot_;  // class-size slot (16-byte steps from 32) -> classes_ index
  std::uint64_t spanning_headerless_ = 0;
  std::uint64_t objects_ = 0, payload_ = 0, spanning_ = 0;
};

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_KERNEL_LAYOUT_H_
