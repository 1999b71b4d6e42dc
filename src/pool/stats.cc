// pool/stats.cc - pool statistics and the kernel's debugfs `classes` table.
#include <cstdio>

#include "pool/pool_impl.h"

namespace uzram {

std::vector<ClassStats> PoolImpl::class_stats_impl() const noexcept {
  std::vector<ClassStats> out;
  out.reserve(geo_.num_classes());
  for (unsigned i = 0; i < kMaxClasses; i++) {
    if (!is_class(i)) continue;
    auto& c = const_cast<SizeClass&>(classes_[i]);  // the lock is logically mutable
    ClassStats s;
    s.index = i;
    s.size = c.size;
    s.objs_per_zspage = c.objs_per_zspage;
    s.pages_per_zspage = c.pages_per_zspage;
    s.huge = c.huge;
    {
      SpinGuard g(c.lock);
      for (unsigned k = 0; k < kNumFullnessGroups; k++) s.zspages[k] = c.zspages_in[k];
      s.obj_allocated = c.obj_allocated;
      s.obj_used = c.obj_used;
      s.freeable = c.freeable_locked();
    }
    s.pages_used = s.obj_allocated / c.objs_per_zspage * c.pages_per_zspage;
    out.push_back(s);
  }
  return out;
}

PoolStats PoolImpl::stats_impl() const noexcept {
  PoolStats s;
  for (const ClassStats& c : class_stats_impl()) {
    s.objs_allocated += c.obj_allocated;
    s.objs_used += c.obj_used;
    s.zspages += c.obj_allocated / c.objs_per_zspage;
    if (is_run_class(c.index)) s.large_objects += c.obj_used;
  }
  s.total_pages = pages_allocated_.load(std::memory_order_relaxed);
  s.pages_compacted = pages_compacted_.load(std::memory_order_relaxed);
  s.compactions = compactions_.load(std::memory_order_relaxed);
  s.compact_busy = compact_busy_.load(std::memory_order_relaxed);
  s.migrations = migrations_.load(std::memory_order_relaxed);
  s.migrate_busy = migrate_busy_.load(std::memory_order_relaxed);
  s.deferred_frees = deferred_frees_.load(std::memory_order_relaxed);
  s.tails_spilled = tails_spilled_.load(std::memory_order_relaxed);
  s.metadata_bytes =
      handles_.metadata_bytes() + zspages_.metadata_bytes() + arena_.metadata_bytes();
  s.arena_frames = arena_.high_water();
  s.idle_frames = arena_.idle_frames();
  s.frames_returned = arena_.frames_returned();
  s.idle_reused = arena_.idle_reused();
  return s;
}

PoolMemory PoolImpl::memory_impl() const noexcept {
  PoolMemory m;
  arena_.resident(&m.frames, &m.idle_frames);
  m.metadata = arena_.resident_metadata() + handles_.resident_bytes() + zspages_.resident_bytes();
  return m;
}

CompactHoldHistogram PoolImpl::hold_histogram() const noexcept {
  CompactHoldHistogram h;
  for (unsigned b = 0; b < 32; b++) h.ns_log2[b] = hold_hist_[b].load(std::memory_order_relaxed);
  return h;
}

std::string Pool::format_class_stats() const noexcept {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line,
                " %5s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %13s %10s %10s %16s %8s\n",
                "class", "size", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%",
                "99%", "100%", "obj_allocated", "obj_used", "pages_used", "pages_per_zspage",
                "freeable");
  out += line;
  std::uint64_t groups[kNumFullnessGroups] = {}, alloc = 0, used = 0, pages = 0, freeable = 0;
  for (const ClassStats& c : class_stats()) {
    int n = std::snprintf(line, sizeof line, " %5u %5u ", c.index, c.size);
    for (unsigned g = 1; g < kNumFullnessGroups; g++) {
      n += std::snprintf(line + n, sizeof line - n, "%9llu ",
                         static_cast<unsigned long long>(c.zspages[g]));
      groups[g] += c.zspages[g];
    }
    std::snprintf(line + n, sizeof line - n, " %13llu %10llu %10llu %16u %8llu\n",
                  static_cast<unsigned long long>(c.obj_allocated),
                  static_cast<unsigned long long>(c.obj_used),
                  static_cast<unsigned long long>(c.pages_used), c.pages_per_zspage,
                  static_cast<unsigned long long>(c.freeable));
    out += line;
    alloc += c.obj_allocated;
    used += c.obj_used;
    pages += c.pages_used;
    freeable += c.freeable;
  }
  int n = std::snprintf(line, sizeof line, "\n %5s %5s ", "Total", "");
  for (unsigned g = 1; g < kNumFullnessGroups; g++) {
    n += std::snprintf(line + n, sizeof line - n, "%9llu ",
                       static_cast<unsigned long long>(groups[g]));
  }
  std::snprintf(line + n, sizeof line - n, " %13llu %10llu %10llu %16s %8llu\n",
                static_cast<unsigned long long>(alloc), static_cast<unsigned long long>(used),
                static_cast<unsigned long long>(pages), "",
                static_cast<unsigned long long>(freeable));
  out += line;
  return out;
}

}  // namespace uzram
