// util/text_drop.cc - drop_startup_text() (text_drop.h).
#include "util/text_drop.h"

#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "util/proc_file.h"
#include "util/resident.h"

namespace uzram {
namespace {

struct Range {
  std::uintptr_t begin;
  std::uintptr_t end;
};

struct Walk {
  std::uintptr_t vdso = 0;
  std::vector<Range> segments;
  TextDropStats stats;
};

std::uintptr_t hex(std::string_view s) {
  std::uintptr_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v, 16);
  return v;
}

std::uint64_t kb(std::string_view line) {  // "Anonymous:    12 kB" -> 12
  const std::size_t d = line.find_first_of("0123456789");
  std::uint64_t v = 0;
  if (d != std::string_view::npos) std::from_chars(line.data() + d, line.data() + line.size(), v);
  return v;
}

// A smaps header's path: what follows its five fields (empty for an anonymous mapping).
std::string_view path_of(std::string_view header) {
  for (int field = 0; field < 5; field++) {
    const std::size_t sp = header.find(' ');
    if (sp == std::string_view::npos) return {};
    header.remove_prefix(sp);
    while (!header.empty() && header[0] == ' ') header.remove_prefix(1);
  }
  return header;
}

// The mappings that may be dropped: private, not writable, of a file, no anonymous page
// (in memory or swapped out), nothing locked. Sorted by address (smaps lists them in
// order). *file_rss: the resident bytes of every mapping of a file.
std::vector<Range> droppable_mappings(std::string_view smaps, std::size_t* file_rss) {
  std::vector<Range> out;
  Range cur{};
  bool candidate = false, file = false;
  *file_rss = 0;
  auto close = [&] {
    if (candidate) out.push_back(cur);
    candidate = false;
  };
  while (!smaps.empty()) {
    const std::size_t nl = smaps.find('\n');
    const std::string_view line = smaps.substr(0, nl);
    smaps = nl == std::string_view::npos ? std::string_view() : smaps.substr(nl + 1);
    if (line.empty()) continue;
    const char c = line[0];
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {  // "begin-end perms off dev ino path"
      close();
      const std::size_t dash = line.find('-');
      const std::size_t sp = line.find(' ');
      if (dash == std::string_view::npos || sp == std::string_view::npos || dash > sp) continue;
      cur = {hex(line.substr(0, dash)), hex(line.substr(dash + 1, sp - dash - 1))};
      const std::string_view perms = line.substr(sp + 1, 4);
      file = path_of(line).substr(0, 1) == "/";
      candidate = file && perms.size() == 4 && perms[1] != 'w' && perms[3] == 'p';
    } else if (file && line.substr(0, 4) == "Rss:") {
      *file_rss += kb(line) * 1024;
    } else if (candidate && (line.substr(0, 10) == "Anonymous:" || line.substr(0, 7) == "Locked:" ||
                             line.substr(0, 5) == "Swap:")) {
      // (A copied page that went to swap counts under Swap:, not Anonymous:.)
      if (kb(line) != 0) candidate = false;
    }
  }
  close();
  return out;
}

bool has_text_relocations(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_DYNAMIC) continue;
    const auto* dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    for (; dyn->d_tag != DT_NULL; dyn++) {
      if (dyn->d_tag == DT_TEXTREL) return true;
      if (dyn->d_tag == DT_FLAGS && (dyn->d_un.d_val & DF_TEXTREL) != 0) return true;
    }
  }
  return false;
}

// Appends [r.begin, r.end) less `cut` (both page-aligned) to `out`.
void append_less(Range r, Range cut, std::vector<Range>* out) {
  if (cut.end <= r.begin || cut.begin >= r.end) {
    out->push_back(r);
    return;
  }
  if (cut.begin > r.begin) out->push_back({r.begin, cut.begin});
  if (cut.end < r.end) out->push_back({cut.end, r.end});
}

int collect(dl_phdr_info* info, std::size_t, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  const auto phdr = reinterpret_cast<std::uintptr_t>(info->dlpi_phdr);
  if (w->vdso != 0 && phdr >= w->vdso && phdr < w->vdso + 65536) return 0;  // the vDSO
  w->stats.objects++;
  if (has_text_relocations(info)) {
    w->stats.skipped++;
    return 0;
  }
  const std::uintptr_t ps = system_page_size();
  std::vector<Range> relros;  // every PT_GNU_RELRO (one in practice)
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_GNU_RELRO) continue;
    const std::uintptr_t b = info->dlpi_addr + ph.p_vaddr;
    relros.push_back({b / ps * ps, (b + ph.p_memsz + ps - 1) / ps * ps});  // outward
  }
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) continue;
    const std::uintptr_t b = info->dlpi_addr + ph.p_vaddr;
    const Range r{(b + ps - 1) / ps * ps, (b + ph.p_memsz) / ps * ps};  // inward
    if (r.begin >= r.end) continue;
    std::vector<Range> parts{r}, rest;
    for (const Range& cut : relros) {
      rest.clear();
      for (const Range& p : parts) append_less(p, cut, &rest);
      parts.swap(rest);
    }
    w->segments.insert(w->segments.end(), parts.begin(), parts.end());
  }
  return 0;
}

}  // namespace

Result<TextDropStats> drop_startup_text() noexcept {
  Walk w;
  w.vdso = ::getauxval(AT_SYSINFO_EHDR);
  ::dl_iterate_phdr(collect, &w);
  auto smaps = read_proc_file("/proc/self/smaps");
  if (!smaps) return smaps.error();
  const std::vector<Range> ok = droppable_mappings(*smaps, &w.stats.file_rss_before);
  std::sort(w.segments.begin(), w.segments.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  auto m = ok.begin();
  for (const Range& s : w.segments) {
    while (m != ok.end() && m->end <= s.begin) ++m;
    for (auto it = m; it != ok.end() && it->begin < s.end; ++it) {
      const std::uintptr_t b = std::max(s.begin, it->begin);
      const std::uintptr_t e = std::min(s.end, it->end);
      if (b >= e) continue;
      if (::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED) != 0) continue;
      w.stats.ranges++;
      w.stats.bytes += e - b;
    }
  }
  smaps = read_proc_file("/proc/self/smaps");
  if (!smaps) return smaps.error();
  (void)droppable_mappings(*smaps, &w.stats.file_rss_after);
  return w.stats;
}

}  // namespace uzram
