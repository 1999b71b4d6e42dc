// store/pp_pass.cc - PpPass: the one-pass guard, and giving candidates back (pp_pass.h).
#include "store/pp_pass.h"

namespace uzram {

PpPass::~PpPass() {
  release_all();
  if (running_) s_.pp_in_progress_.store(false, std::memory_order_release);  // pairs: begin()
}

Result<void> PpPass::begin(std::string* msg) noexcept {
  // acquire: pairs with the release of the pass before (its slot updates happened before).
  if (s_.pp_in_progress_.exchange(true, std::memory_order_acquire)) {
    return fail(msg, Errc::busy,
                std::string(what_) + ": another writeback or recompress is in progress");
  }
  running_ = true;
  return {};
}

void PpPass::release(std::uint64_t index) noexcept {
  s_.init_lock_.assert_held_shared();  // held by the caller for the pass (pp_pass.h)
  Slot& slot = s_.slots_[index];
  Slot& u = s_.unit_lock(index);
  u.lock();
  slot.held_by(u);
  slot.set(slot.get() & ~(slotf::kPpSlot | slotf::kLock));
  u.unlock();
}

bool PpPass::add(std::uint64_t index, std::uint32_t size) noexcept {
  if (buckets_.add(index, size)) return true;
  release(index);
  return false;
}

Result<void> PpPass::out_of_memory(std::string* msg) noexcept {
  release_all();
  return fail(msg, Errc::no_memory, std::string(what_) + ": out of memory");
}

void PpPass::release_all() noexcept {
  for (std::uint64_t i; buckets_.pop(&i);) release(i);
}

}  // namespace uzram
