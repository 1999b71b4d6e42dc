// expect: writing variable 'a' requires holding mutex 'mu' exclusively
#include "sync/mutex.h"

namespace uzram {
struct S {
  Mutex mu{LockLevel::worker, "mu"};
  int a ZS_GUARDED_BY(mu) = 0;
  void f() { a++; }
};
}  // namespace uzram
