// bench/macro/kernel_layout.cc - frames the kernel's zsmalloc layout needs (see the header).
#include "kernel_layout.h"

#include <algorithm>
#include <cstdio>

namespace uzram::bench {

namespace {

constexpr unsigned kMinSize = 32, kDelta = 16, kSlots = 255;

unsigned slot_index(std::size_t bytes) noexcept {
  if (bytes <= kMinSize) return 0;
  return std::min<unsigned>(static_cast<unsigned>((bytes - kMinSize + kDelta - 1) / kDelta),
                            kSlots - 1);
}

}  // namespace

KernelLayout::KernelLayout(unsigned chain_size) : chain_(chain_size), slot_(kSlots) {
  std::vector<ClassGeometry> table = class_table(chain_size);
  std::sort(table.begin(), table.end(),
            [](const ClassGeometry& a, const ClassGeometry& b) { return a.size < b.size; });
  for (const ClassGeometry& g : table) classes_.push_back({g});
  // A slot is served by the smallest real class at least as large (class merging).
  std::size_t c = 0;
  for (unsigned i = 0; i < kSlots; i++) {
    const unsigned size = std::min<unsigned>(kMinSize + i * kDelta, kPageSize);
    while (c + 1 < classes_.size() && classes_[c].geo.size < size) c++;
    slot_[i] = static_cast<std::uint16_t>(c);
  }
}

unsigned KernelLayout::class_of(std::size_t bytes) const noexcept {
  return slot_[slot_index(bytes)];
}

void KernelLayout::add(std::uint32_t size) noexcept {
  objects_++;
  payload_ += size;
  Class& c = classes_[class_of(size + kHeaderBytes)];
  Class& h = classes_[class_of(size)];
  if (!h.geo.huge) {
    const std::uint64_t off = (h.count_headerless % h.geo.objs_per_zspage) * h.geo.size;
    if ((off % kPageSize) + size > kPageSize) spanning_headerless_++;
  }
  h.count_headerless++;
  if (!c.geo.huge) {
    // Slot j of a zspage starts at j * size; the payload follows the 8-byte header.
    const std::uint64_t slot = c.count % c.geo.objs_per_zspage;
    const std::uint64_t off = slot * c.geo.size + kHeaderBytes;
    if ((off % kPageSize) + size > kPageSize) spanning_++;
  }
  c.count++;
}

LayoutTotals KernelLayout::totals() const noexcept {
  LayoutTotals t;
  t.objects = objects_;
  t.payload_bytes = payload_;
  t.spanning_objects = spanning_;
  t.spanning_objects_headerless = spanning_headerless_;
  for (const Class& c : classes_) {
    const std::uint64_t z = (c.count + c.geo.objs_per_zspage - 1) / c.geo.objs_per_zspage;
    t.zspages += z;
    t.frames += z * c.geo.pages_per_zspage;
    if (c.geo.huge) t.huge_objects += c.count;
    const std::uint64_t zh =
        (c.count_headerless + c.geo.objs_per_zspage - 1) / c.geo.objs_per_zspage;
    t.frames_headerless += zh * c.geo.pages_per_zspage;
  }
  t.slab_bytes_est = objects_ * kHeaderBytes + t.zspages * kZspageDescBytes;
  return t;
}

std::string KernelLayout::check_against_kernel_facts() const {
  if (chain_ != 8) return "";
  std::string why;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) why += (why.empty() ? "" : "; ") + std::string(what);
  };
  expect(classes_.size() == 119, "not 119 classes");
  // Rows of Linux 6.18's class table (mm/zsmalloc.c, 4 KiB pages, chain 8):
  // size / pages_per_zspage / objs_per_zspage.
  const unsigned rows[][3] = {{32, 1, 128}, {48, 3, 256},  {144, 7, 199}, {208, 3, 59},
                              {352, 8, 93}, {1568, 5, 13}, {2048, 1, 2},  {2720, 2, 3},
                              {3072, 3, 4}, {3264, 4, 5},  {3408, 5, 6},  {3504, 6, 7},
                              {3584, 7, 8}, {3632, 8, 9},  {4096, 1, 1}};
  for (const auto& r : rows) {
    bool found = false;
    for (const Class& c : classes_) {
      if (c.geo.size == r[0])
        found = c.geo.pages_per_zspage == r[1] && c.geo.objs_per_zspage == r[2];
    }
    if (!found) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "class %u is not %u pages x %u objects", r[0], r[1], r[2]);
      expect(false, buf);
    }
  }
  // Largest normal class 3632 -> huge_class_size 3625: 3624 + header fits class 3632.
  expect(!classes_[class_of(3624 + kHeaderBytes)].geo.huge, "3624 B is not a normal object");
  expect(classes_[class_of(3625 + kHeaderBytes)].geo.huge, "3625 B is not a huge object");
  return why;
}

}  // namespace uzram::bench
