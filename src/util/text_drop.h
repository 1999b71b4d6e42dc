// util/text_drop.h - drop_startup_text(): gives back this process's page-table mappings
// of the read-only segments of its loaded objects (layer 0). docs/uzram-serve.md, "Memory".
//
// A server touches much code and read-only data only while it starts (option parsing,
// configuration, the loader's relocations, library constructors); those pages stay mapped
// and count in its RSS for its whole life. drop_startup_text() walks the objects loaded
// now (dl_iterate_phdr: the executable, ld.so and every shared library; not the vDSO), and
// for every PT_LOAD segment without PF_W, page-aligned inward, less any PT_GNU_RELRO
// range, madvise(MADV_DONTNEED)s the part that /proc/self/smaps shows as a private,
// read-only mapping of a file with no anonymous (copy-on-write) page, resident or
// swapped, and nothing locked. An object with text relocations (DT_TEXTREL) is left
// alone: its "read-only" segments were written. Such pages are clean page-cache pages,
// so dropping them loses nothing: a later access maps the same page again (a minor fault, no I/O
// while the page stays cached). What it frees is this process's RSS share, not memory: the pages
// stay in the page cache (until the kernel reclaims them as it would any clean file page).
//
// Safe while other threads run: a thread that executes a dropped page faults it back.
// Not for a process that must not fault (mlockall: locked mappings are skipped anyway,
// and the caller should not ask). Objects loaded after the call are not touched.
#ifndef UZRAM_UTIL_TEXT_DROP_H_
#define UZRAM_UTIL_TEXT_DROP_H_

#include <cstddef>

#include "uzram/result.h"

namespace uzram {

struct TextDropStats {
  std::size_t objects = 0;          // loaded objects walked (the vDSO excluded)
  std::size_t skipped = 0;          // objects left alone (text relocations)
  std::size_t ranges = 0;           // address ranges advised
  std::size_t bytes = 0;            // bytes of address space advised (not all of it was resident)
  std::size_t file_rss_before = 0;  // resident bytes of all file mappings (smaps), before
  std::size_t file_rss_after = 0;   // and after (what the call touched itself included)
};

// Errors: /proc/self/smaps unreadable (the system's errno); madvise failures skip that
// range and are not errors.
[[nodiscard]] Result<TextDropStats> drop_startup_text() noexcept;

}  // namespace uzram

#endif  // UZRAM_UTIL_TEXT_DROP_H_
