// sync/scoped_lock.h - ReaderLock and WriterLock (layer 1): scoped guards of a
// reader/writer capability (ShardedRwMutex, RwSpinLock), so that clang's analysis knows
// what the scope holds. The lock's own methods check the order (sync/lock_order.h).
#ifndef UZRAM_SYNC_SCOPED_LOCK_H_
#define UZRAM_SYNC_SCOPED_LOCK_H_

#include "sync/annotations.h"
#include "sync/lock_order.h"

namespace uzram {

// Holds `l` shared for its scope.
template <typename L>
class ZS_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(L& l, SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE_SHARED(l)
      : l_(l), site_(site) {
    l_.lock_shared(site_);
  }
  ~ReaderLock() ZS_RELEASE() { l_.unlock_shared(site_); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  L& l_;
  const SiteLoc site_;
};

// Holds `l` exclusively for its scope.
template <typename L>
class ZS_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(L& l, SiteLoc site = SiteLoc::current()) noexcept ZS_ACQUIRE(l)
      : l_(l), site_(site) {
    l_.lock(site_);
  }
  ~WriterLock() ZS_RELEASE() { l_.unlock(site_); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  L& l_;
  const SiteLoc site_;
};

}  // namespace uzram

#endif  // UZRAM_SYNC_SCOPED_LOCK_H_
