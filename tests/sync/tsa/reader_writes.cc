// expect: writing variable 'b' requires holding shared mutex 'rw' exclusively
#include "sync/scoped_lock.h"
#include "sync/sharded_rw_mutex.h"

namespace uzram {
struct S {
  ShardedRwMutex rw{LockLevel::store_init, "rw"};
  int b ZS_GUARDED_BY(rw) = 0;
  void f() {
    ReaderLock l(rw);
    b++;
  }
};
}  // namespace uzram
