// expect: (none: compiles cleanly) - the family used as intended.
#include "sync/bit_lock.h"
#include "sync/mutex.h"
#include "sync/rw_spin_lock.h"
#include "sync/scoped_lock.h"
#include "sync/sharded_rw_mutex.h"
#include "sync/spin_lock.h"
#include "sync/zspage_lock.h"

namespace uzram {

struct BitTraits {
  using Word = unsigned;
  static constexpr Word kBit = 1;
  static constexpr LockLevel kLevel = LockLevel::frame;
  static constexpr const char* kName = "bit";
};

struct S {
  Mutex mu{LockLevel::worker, "mu"};
  CondVar cv;
  int a ZS_GUARDED_BY(mu) = 0;
  ShardedRwMutex rw{LockLevel::store_init, "rw"};
  int b ZS_GUARDED_BY(rw) = 0;
  RwSpinLock rs{LockLevel::pool, "rs"};
  int c ZS_GUARDED_BY(rs) = 0;
  SpinLock sl{LockLevel::size_class, "sl"};
  int d ZS_GUARDED_BY(sl) = 0;
  ZsPageLock z;
  int e ZS_GUARDED_BY(z) = 0;
  BitLock<BitTraits> bit;
  int f ZS_GUARDED_BY(bit) = 0;

  void add_locked() ZS_REQUIRES(mu) { a++; }
  int all() {
    int r = 0;
    {
      MutexLock l(mu);
      add_locked();
      while (a == 0) cv.wait(mu);
      l.unlock();
      l.lock();
      r += a;
    }
    {
      ReaderLock l(rw);
      r += b;
    }
    {
      WriterLock l(rw);
      b++;
    }
    {
      ReaderLock l(rs);
      r += c;
    }
    {
      SpinGuard g(sl);
      d++;
    }
    z.lock_read();
    r += e;
    z.unlock_read();
    if (z.try_lock_write()) {
      e++;
      z.unlock_write();
    }
    bit.lock();
    f++;
    bit.unlock();
    return r;
  }
  // The read_begin / read_end hand-over.
  int begin() {
    z.lock_read();
    const int r = e;
    z.leave_read_held();
    return r;
  }
  void end() {
    z.assert_read_held();
    z.unlock_read();
  }
};

}  // namespace uzram
