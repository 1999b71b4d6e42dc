// store/memory.cc - where the process's resident memory goes (uzram/memory.h): each
// store's part (StoreImpl::do_memory), the registered sources, and the process-wide
// breakdown from /proc/self/smaps and /proc/self/status; the `memory` attribute's reader.
#include "uzram/memory.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "store/attr_table.h"
#include "store/fail.h"
#include "store/store_impl.h"
#include "sync/mutex.h"
#include "util/errno_text.h"
#include "util/proc_file.h"
#include "util/resident.h"

namespace uzram {
namespace {

// The live stores and the sources. Protects: both lists, and keeps each store and source
// alive while a breakdown reads it (a store unregisters first thing in its destructor, a
// source in MemorySourceHandle::reset). Level: memory (sync/lock_order.h), before
// store_init: a breakdown takes each store's init_lock_ shared, and its stream mutexes,
// under it. Never taken with a store lock held.
struct MemoryRegistry {
  Mutex mu{LockLevel::memory, "memory"};
  std::vector<const StoreImpl*> stores ZS_GUARDED_BY(mu);
  std::vector<std::pair<std::uint64_t, MemorySourceFn>> sources ZS_GUARDED_BY(mu);
  std::uint64_t next_id ZS_GUARDED_BY(mu) = 1;
};

MemoryRegistry& registry() {
  static MemoryRegistry* r = new MemoryRegistry;  // never destroyed: stores may outlive exit
  return *r;
}

// Reads a whole /proc file; *msg on failure.
Result<std::string> read_proc(const char* path, std::string* msg) {
  auto r = read_proc_file(path);
  if (!r && msg) *msg = std::string("memory: ") + path + ": " + errno_text(r.error().value());
  return r;
}

std::uint64_t kb_field(std::string_view line) {  // "Rss:     1234 kB" -> bytes
  const std::size_t d = line.find_first_of("0123456789");
  std::uint64_t v = 0;
  if (d != std::string_view::npos) std::from_chars(line.data() + d, line.data() + line.size(), v);
  return v * 1024;
}

// Rss of the anonymous and of the file-backed mappings, from /proc/self/smaps. The
// kernel's special mappings ([vdso], [vvar], [vsyscall]) are left out: VmRSS does not
// count them.
struct SmapsTotals {
  std::uint64_t anon = 0;
  std::uint64_t file = 0;
};

SmapsTotals parse_smaps(std::string_view text) {
  SmapsTotals t;
  bool file = false, special = false;
  while (!text.empty()) {
    const std::size_t nl = std::min(text.find('\n'), text.size());
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(std::min(nl + 1, text.size()));
    if (line.empty()) continue;
    const char c = line[0];
    const bool header = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (header && line.find('-') < line.find(' ')) {
      // "start-end perms offset dev inode [path]": the path starts after the 5th field.
      std::string_view rest = line;
      for (int f = 0; f < 5; f++) {
        const std::size_t sp = rest.find(' ');
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
        rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
      }
      file = !rest.empty() && rest[0] == '/';
      special = rest == "[vdso]" || rest == "[vvar]" || rest == "[vsyscall]";
      continue;
    }
    if (line.substr(0, 4) == "Rss:" && !special) (file ? t.file : t.anon) += kb_field(line);
  }
  return t;
}

std::uint64_t vm_rss(std::string_view status) {
  const std::size_t at = status.find("\nVmRSS:");
  if (at == std::string_view::npos) return 0;
  const std::string_view rest = status.substr(at + 1);
  return kb_field(rest.substr(0, rest.find('\n')));
}

}  // namespace

// ---- The stores' part ---------------------------------------------------------------------

void memory_register(const StoreImpl* s) noexcept {
  MemoryRegistry& r = registry();
  MutexLock l(r.mu);
  try {
    r.stores.push_back(s);
  } catch (...) {  // out of memory: the store is left out of the breakdown
  }
}

void memory_unregister(const StoreImpl* s) noexcept {
  MemoryRegistry& r = registry();
  MutexLock l(r.mu);
  std::erase(r.stores, s);
}

StoreMemory StoreImpl::do_memory() const noexcept {
  StoreMemory m;
  ReaderLock l(init_lock_);
  if (pool_) {
    const PoolMemory p = pool_->memory();
    m.pool_frames = p.frames;
    m.pool_idle_frames = p.idle_frames;
    m.pool_metadata = p.metadata;
  }
  if (slots_) {
    // Only pages a write marked hold data (the summary): the others were never touched,
    // or only read (the shared zero page, which VmRSS does not count).
    const Slot* const slots = slots_;  // read under the lock (the lambda is not analysed)
    summary_.for_each_range(0, nslots_, [&](std::uint64_t first, std::uint64_t end) {
      m.slot_table += resident_bytes_of(&slots[first], (end - first) * sizeof(Slot));
      return true;
    });
    m.slot_table += summary_.resident_bytes();
  }
  for (const StreamPool& p : streams_) m.streams += p.memory_bytes();
  return m;
}

// ---- Sources --------------------------------------------------------------------------------

MemorySourceHandle& MemorySourceHandle::operator=(MemorySourceHandle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = 0;
  }
  return *this;
}

void MemorySourceHandle::reset() noexcept {
  if (id_ == 0) return;
  MemoryRegistry& r = registry();
  MutexLock l(r.mu);
  std::erase_if(r.sources, [this](const auto& e) { return e.first == id_; });
  id_ = 0;
}

Result<MemorySourceHandle> add_memory_source(MemorySourceFn fn) noexcept {
  MemoryRegistry& r = registry();
  MutexLock l(r.mu);
  MemorySourceHandle h;
  try {
    r.sources.emplace_back(r.next_id, std::move(fn));
  } catch (...) {
    return Errc::no_memory;
  }
  h.id_ = r.next_id++;
  return h;
}

// ---- The breakdown --------------------------------------------------------------------------

Result<std::vector<MemoryLine>> memory_breakdown() noexcept {
  try {
    std::vector<MemoryLine> lines;
    std::uint64_t measured = 0;  // the lines so far: all inside anonymous mappings
    {
      MemoryRegistry& r = registry();
      MutexLock l(r.mu);  // taken with no store lock held
      std::vector<const StoreImpl*> stores = r.stores;
      std::sort(stores.begin(), stores.end(), [](const StoreImpl* a, const StoreImpl* b) {
        return a->name_.size() != b->name_.size() ? a->name_.size() < b->name_.size()
                                                  : a->name_ < b->name_;
      });
      for (const StoreImpl* s : stores) {
        const StoreMemory m = s->do_memory();
        const std::pair<const char*, std::uint64_t> parts[] = {
            {".pool_frames", m.pool_frames},
            {".pool_idle_frames", m.pool_idle_frames},
            {".pool_metadata", m.pool_metadata},
            {".slot_table", m.slot_table},
            {".streams", m.streams}};
        for (const auto& [suffix, bytes] : parts) lines.push_back({s->name_ + suffix, bytes});
      }
      for (const auto& [id, fn] : r.sources) fn(&lines);
    }
    for (const MemoryLine& m : lines) measured += m.bytes;
    // VmRSS before and after smaps is read and summed, until both agree (at most 3 tries):
    // what this reading runs may map pages back in between (a server's code after its
    // startup text was dropped, util/text_drop.h), and the parts must sum to one moment.
    std::string msg;
    SmapsTotals t;
    Result<std::string> status = std::string();
    for (int tries = 0; tries < 3; tries++) {
      auto before = read_proc("/proc/self/status", &msg);
      if (!before) return before.error();
      auto smaps = read_proc("/proc/self/smaps", &msg);
      if (!smaps) return smaps.error();
      t = parse_smaps(*smaps);
      status = read_proc("/proc/self/status", &msg);
      if (!status) return status.error();
      if (vm_rss(*before) == vm_rss(*status)) break;
    }
    lines.push_back({"heap", t.anon > measured ? t.anon - measured : 0});
    lines.push_back({"libraries", t.file});
    lines.push_back({"rss", vm_rss(*status)});
    return lines;
  } catch (...) {
    return Errc::no_memory;
  }
}

std::string format_memory(const std::vector<MemoryLine>& lines) {
  std::string out;
  for (const MemoryLine& m : lines) out += m.name + " " + std::to_string(m.bytes) + "\n";
  return out;
}

// The `memory` attribute: the process's breakdown (the same whichever store is read).
Result<std::string> attr::read_memory(const StoreImpl&, std::string* msg) noexcept {
  auto lines = memory_breakdown();
  if (!lines) return fail(msg, lines.error(), "memory: cannot read /proc/self").error();
  try {
    return format_memory(*lines);
  } catch (...) {
    return Errc::no_memory;
  }
}

}  // namespace uzram
