// store/fail.h - fail(): the store's one error helper for attribute writes and the
// post-processing commands (layer 3). The error e, with its one-line explanation (naming
// the attribute) in *msg when the caller asked for one.
#ifndef UZRAM_STORE_FAIL_H_
#define UZRAM_STORE_FAIL_H_

#include <string>
#include <system_error>
#include <utility>

#include "uzram/result.h"

namespace uzram {

[[nodiscard]] inline Result<void> fail(std::string* msg, std::error_code e,
                                       std::string text) noexcept {
  if (msg) *msg = std::move(text);
  return e;
}

}  // namespace uzram

#endif  // UZRAM_STORE_FAIL_H_
