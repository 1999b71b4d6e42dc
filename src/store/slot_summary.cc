// store/slot_summary.cc - SlotSummary's mapping (slot_summary.h).
#include "store/slot_summary.h"

#include <sys/mman.h>

namespace uzram {

Result<void> SlotSummary::init(std::uint64_t nslots) noexcept {
  release();
  const std::uint64_t pages = (nslots + kSlotsPerPage - 1) / kSlotsPerPage;
  const std::uint64_t nwords = (pages + 63) / 64;
  if (nwords == 0) return {};
  void* m = ::mmap(nullptr, nwords * sizeof(std::uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return Errc::no_memory;
  words_ = static_cast<std::uint64_t*>(m);  // zero-filled: every bit clear
  nwords_ = nwords;
  nslots_ = nslots;
  return {};
}

void SlotSummary::release() noexcept {
  if (words_) ::munmap(words_, nwords_ * sizeof(std::uint64_t));
  words_ = nullptr;
  nwords_ = nslots_ = 0;
}

std::uint64_t SlotSummary::resident_bytes() const noexcept {
  constexpr std::uint64_t kWordsPerPage = 4096 / sizeof(std::uint64_t);
  std::uint64_t bytes = 0;
  for (std::uint64_t p = 0; p < nwords_; p += kWordsPerPage) {
    for (std::uint64_t w = p; w < nwords_ && w < p + kWordsPerPage; w++) {
      if (load(w)) {
        bytes += 4096;
        break;
      }
    }
  }
  return bytes;
}

std::uint64_t SlotSummary::pages_marked() const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t w = 0; w < nwords_; w++)
    n += static_cast<unsigned>(__builtin_popcountll(load(w)));
  return n;
}

}  // namespace uzram
