// expect: reading variable 'c' requires holding rwlock 'rs'
#include "sync/rw_spin_lock.h"

namespace uzram {
struct S {
  RwSpinLock rs{LockLevel::pool, "rs"};
  int c ZS_GUARDED_BY(rs) = 0;
  int f() { return c; }
};
}  // namespace uzram
