// store/pp_run.h - the post-processing commands for callers inside the store (layer 3): the
// passes behind the `idle`, `writeback` and `recompress` attributes, with what they did.
// The policy engine (store/policy.h) drives the store through these and nothing else.
//
// Each is called with init_lock_ held shared on an initialised device, and no other store
// lock; writeback and recompress take the one-pass-at-a-time guard (PpPass: Errc::busy
// while another pass runs), exactly as the attributes do.
#ifndef UZRAM_STORE_PP_RUN_H_
#define UZRAM_STORE_PP_RUN_H_

#include <cstdint>
#include <string>

#include "store/attr_table.h"
#include "uzram/result.h"

namespace uzram {

// What a pass did.
struct PpDone {
  std::uint64_t pages = 0;  // blocks written back / recompressed into a smaller class
  std::uint64_t bytes = 0;  // pool bytes they freed (object sizes / size saved)
};

// `writeback`: the command as parsed (parse_writeback), with WbCommand::max_pages as a
// cap. *done (optional) counts the blocks published as written back.
[[nodiscard]] Result<void> run_writeback(StoreImpl& s, const WbCommand& cmd, PpDone* done,
                                         std::string* msg) noexcept;
// `recompress`: the command as parsed (parse_recompress). *done (optional) counts the
// blocks that moved to a smaller class and the bytes saved.
[[nodiscard]] Result<void> run_recompress(StoreImpl& s, const RecompCommand& cmd, PpDone* done,
                                          std::string* msg) noexcept;
// `idle SECONDS` (age > 0) or `idle all` (age 0): marks the pool objects at least `age`
// seconds old IDLE and clears IDLE on the younger ones; returns how many are IDLE now.
std::uint64_t mark_idle(StoreImpl& s, std::uint64_t age) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_PP_RUN_H_
