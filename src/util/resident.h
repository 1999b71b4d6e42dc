// util/resident.h - how much of a mapping is resident (layer 0): mincore(2) over a range,
// in bounded steps (a 4 KiB vector per call on the stack, 16 MiB of address space).
//
// What mincore counts: a page of an anonymous mapping is resident when it is mapped in
// this process's page tables (not swapped out, never touched, or given back with
// MADV_DONTNEED). A page that was only ever *read* maps the shared zero page, which
// mincore reports as resident while VmRSS does not count it: callers use this on memory
// that is written before it is read (the pool's frames and tables, the slot table's
// written pages). Unmapped parts of the range count as not resident.
#ifndef UZRAM_UTIL_RESIDENT_H_
#define UZRAM_UTIL_RESIDENT_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace uzram {

inline std::size_t system_page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

// Calls f(i) for every resident page i of [addr, addr + len), page i being the one at
// (addr rounded down to a page) + i pages.
template <typename F>
void for_each_resident_page(const void* addr, std::size_t len, F&& f) noexcept {
  if (addr == nullptr || len == 0) return;
  const std::size_t ps = system_page_size();
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  const std::uintptr_t first = a / ps * ps;
  const std::size_t pages = (a + len - first + ps - 1) / ps;
  constexpr std::size_t kStep = 4096;  // pages per mincore call
  unsigned char vec[kStep];
  for (std::size_t done = 0; done < pages; done += kStep) {
    const std::size_t n = pages - done < kStep ? pages - done : kStep;
    if (::mincore(reinterpret_cast<void*>(first + done * ps), n * ps, vec) != 0) {
      // ENOMEM: part of the range is unmapped. Page by page, skipping the holes.
      for (std::size_t i = 0; i < n; i++) {
        unsigned char one = 0;
        if (::mincore(reinterpret_cast<void*>(first + (done + i) * ps), ps, &one) == 0 && (one & 1))
          f(done + i);
      }
      continue;
    }
    for (std::size_t i = 0; i < n; i++) {
      if (vec[i] & 1) f(done + i);
    }
  }
}

// Resident bytes of the pages that [addr, addr + len) touches.
inline std::size_t resident_bytes_of(const void* addr, std::size_t len) noexcept {
  std::size_t pages = 0;
  for_each_resident_page(addr, len, [&pages](std::size_t) { pages++; });
  return pages * system_page_size();
}

}  // namespace uzram

#endif  // UZRAM_UTIL_RESIDENT_H_
