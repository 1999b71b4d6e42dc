// expect: calling function 'wait' requires holding mutex 'mu' exclusively
#include "sync/mutex.h"

namespace uzram {
struct S {
  Mutex mu{LockLevel::worker, "mu"};
  CondVar cv;
  void f() { cv.wait(mu); }
};
}  // namespace uzram
