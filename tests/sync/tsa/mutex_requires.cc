// expect: calling function 'add_locked' requires holding mutex 'mu' exclusively
#include "sync/mutex.h"

namespace uzram {
struct S {
  Mutex mu{LockLevel::worker, "mu"};
  int a ZS_GUARDED_BY(mu) = 0;
  void add_locked() ZS_REQUIRES(mu) { a++; }
  void f() {
    MutexLock l(mu);
    l.unlock();
    add_locked();
  }
};
}  // namespace uzram
