// bench/macro/report.cc - tables, JSON, timeline file and target verdicts.
#include "report.h"

#include <algorithm>

#include "workload.h"

namespace uzram::bench {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
const Json kNull;
const char* const kPoints[] = {"fill", "free75", "compact", "churn_free75", "churn_compact"};

const BackendRun* find(const std::vector<BackendRun>& runs, const char* name) {
  for (const BackendRun& r : runs) {
    if (r.name == name && r.ok) return &r;
  }
  return nullptr;
}

double ns_per_op(const BackendRun& r, std::string_view phase) {
  const JsonView p = JsonView(r.result)["phases"][phase];
  const double ops = p["ops"].number_or(0);
  return ops > 0 ? p["ns"].number_or(0) / ops : 0;
}

double ratio(const BackendRun& r, const char* point) {
  const JsonView p = JsonView(r.result)["points"][point];
  const double payload = p["payload"].number_or(0);
  return payload > 0 ? p["used"].number_or(0) / payload : 0;
}

double pct(double used, double payload) { return payload > 0 ? 100.0 * (used / payload - 1) : 0; }

std::string label(const BackendRun& r) {
  const std::string a = JsonView(r.result)["allocator"].string_or_empty();
  return r.name.rfind("uzram", 0) == 0 ? r.name : a.empty() ? r.name : a;
}

// The phase objects of `result` ("phases": {<phase>: {...}}); null when it has none.
Json* phases_of(Json& result) {
  if (!result.is_object()) return nullptr;
  const auto it = result.find("phases");
  return it != result.end() && it->is_object() ? &*it : nullptr;
}

}  // namespace

void add_repeat(BackendRun& into, const Json& rep) {
  if (into.reps.empty()) into.result = rep;
  into.reps.push_back(rep);
  // Collect each phase's ns in an array beside it; finish_repeats takes the median.
  Json* phases = phases_of(into.result);
  if (!phases) return;
  for (const auto& item : phases->items()) {
    Json& p = item.value();
    if (!p.is_object()) continue;
    Json& all = p["ns_all"];
    if (!all.is_array()) all = Json::array();
    all.push_back(JsonView(rep)["phases"][item.key()]["ns"].json());
  }
}

void finish_repeats(BackendRun& run) {
  Json* phases = phases_of(run.result);
  if (!phases) return;
  for (const auto& item : phases->items()) {
    Json& p = item.value();
    const JsonView all = JsonView(p)["ns_all"];
    std::vector<double> v;
    for (std::size_t i = 0; i < all.size(); i++) v.push_back(all[i].number_or(0));
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    p["ns"] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
}

std::vector<Target> evaluate_targets(const RunInfo& info, const std::vector<BackendRun>& runs) {
  std::vector<Target> out;
  const BackendRun* pool = find(runs, "uzram");
  const BackendRun* glibc = find(runs, "glibc");
  char buf[512];
  const double payload = static_cast<double>(info.kernel.payload_bytes);
  const double kernel = static_cast<double>(info.kernel.kernel_needs_bytes());
  if (pool) {
    const JsonView f = JsonView(pool->result)["points"]["fill"];
    const double used = f["used"].number_or(0);
    std::snprintf(
        buf, sizeof buf,
        "uzram used %.2f MiB (+%.2f %%: %.0f frames + %.2f MiB metadata) vs kernel layout "
        "%.2f MiB (+%.2f %%: %llu frames + an 8-B handle per object; +%.2f %% with its "
        "zspage descriptors est.)",
        used / kMiB, pct(used, payload), f["frames"].number_or(0),
        f["metadata"].number_or(0) / kMiB, kernel / kMiB, pct(kernel, payload),
        static_cast<unsigned long long>(info.kernel.frames),
        pct(static_cast<double>(info.kernel.frames * 4096 + info.kernel.slab_bytes_est), payload));
    out.push_back({"memory at fill <= kernel layout (frames + handles)", used <= kernel, buf});
    const double r = ratio(*pool, "compact");
    std::snprintf(buf, sizeof buf, "used / live payload = %.4f after freeing 75 %% and compact()",
                  r);
    out.push_back({"after 75 % free + compaction: used <= 1.06 x live payload", r <= 1.06, buf});
    const double copied = JsonView(pool->result)["reads"]["copied"].number_or(-1);
    const double total = JsonView(pool->result)["reads"]["total"].number_or(0);
    const double span = static_cast<double>(info.kernel.spanning_objects_headerless);
    std::snprintf(buf, sizeof buf,
                  "%.0f of %.0f reads copied; %.0f objects straddle a frame (predicted from the "
                  "class geometry for an in-order header-less fill; one over adjacent frames "
                  "is read in place)",
                  copied, total, span);
    out.push_back(
        {"reads of objects within one frame make no copy", copied >= 0 && copied <= span, buf});
  } else {
    out.push_back({"memory targets", -1, "the uzram backend did not run"});
  }
  if (pool && glibc) {
    const double p = ns_per_op(*pool, "churn"), g = ns_per_op(*glibc, "churn");
    std::snprintf(buf, sizeof buf, "uzram %.1f ns vs glibc %.1f ns per free+alloc+write = %.2fx", p,
                  g, g > 0 ? p / g : 0);
    out.push_back(
        {"alloc+write+free <= 1.5 x glibc malloc+memcpy+free", g > 0 && p <= 1.5 * g, buf});
  } else {
    out.push_back({"alloc+write+free <= 1.5 x glibc", -1, "uzram or glibc did not run"});
  }
  return out;
}

void print_report(std::FILE* out, const RunInfo& info, const std::vector<BackendRun>& runs) {
  std::fprintf(out, "uzram-bench: %llu objects, %s, seed %llu, churn %llu ops\n",
               static_cast<unsigned long long>(info.objects), info.model.c_str(),
               static_cast<unsigned long long>(info.seed),
               static_cast<unsigned long long>(info.churn));
  std::fprintf(out, "machine: %s, %u CPUs\n", info.cpu.c_str(), info.cpus);
  for (const BackendRun& r : runs) {
    if (!r.ok) std::fprintf(out, "  %s: FAILED (%s)\n", r.name.c_str(), r.error.c_str());
  }

  std::fprintf(out,
               "\nSpeed, ns per operation (median of %llu run%s, backends interleaved; the same\n"
               "operations for every backend)\n",
               static_cast<unsigned long long>(info.repeat), info.repeat == 1 ? "" : "s");
  std::fprintf(out, "  %-28s %12s %16s %10s %10s %12s\n", "backend", "fill", "churn", "read",
               "free", "compact");
  std::fprintf(out, "  %-28s %12s %16s %10s %10s %12s\n", "", "alloc+write", "free+alloc+write", "",
               "(75 %)", "(ms)");
  for (const BackendRun& r : runs) {
    if (!r.ok) continue;
    std::fprintf(out, "  %-28s %12.1f %16.1f %10.1f %10.1f %12.2f\n", label(r).c_str(),
                 ns_per_op(r, "fill"), ns_per_op(r, "churn"), ns_per_op(r, "read"),
                 ns_per_op(r, "free75"),
                 JsonView(r.result)["phases"]["compact"]["ns"].number_or(0) / 1e6);
  }

  std::fprintf(
      out, "\nMemory, used / live payload (pool: frames x 4096 + metadata; malloc: RSS delta)\n");
  std::fprintf(out, "  %-28s %9s %9s %10s %10s %10s\n", "backend", "fill", "75% freed", "compacted",
               "churn,75%", "compacted");
  if (!runs.empty()) {
    for (const BackendRun& r : runs) {
      if (!r.ok) continue;
      std::fprintf(out, "  %-28s", "live payload (MiB)");
      for (const char* p : kPoints) {
        const double live = JsonView(r.result)["points"][p]["payload"].number_or(0);
        std::fprintf(out, " %9.1f ", live / kMiB);
      }
      std::fprintf(out, "\n");
      break;
    }
  }
  for (const BackendRun& r : runs) {
    if (!r.ok) continue;
    std::fprintf(out, "  %-28s", label(r).c_str());
    for (const char* p : kPoints) std::fprintf(out, " %9.4f ", ratio(r, p));
    std::fprintf(out, "\n");
  }

  const LayoutTotals& k = info.kernel;
  const double payload = static_cast<double>(k.payload_bytes);
  std::fprintf(
      out, "\nKernel zsmalloc layout for the same %llu fill sizes (class_table(8), 8-B header)\n",
      static_cast<unsigned long long>(k.objects));
  if (!info.layout_check.empty()) {
    std::fprintf(out, "  WARNING: class table differs from the kernel facts: %s\n",
                 info.layout_check.c_str());
  }
  std::fprintf(out, "  %-40s %12.2f MiB\n", "live payload", payload / kMiB);
  std::fprintf(
      out, "  %-40s %12.2f MiB  %+7.2f %%  (%llu frames, %llu zspages, %llu huge objects)\n",
      "kernel layout, frames", static_cast<double>(k.frames) * 4096 / kMiB,
      pct(static_cast<double>(k.frames) * 4096, payload), static_cast<unsigned long long>(k.frames),
      static_cast<unsigned long long>(k.zspages), static_cast<unsigned long long>(k.huge_objects));
  const double ks = static_cast<double>(k.frames) * 4096 + static_cast<double>(k.slab_bytes_est);
  const double kn = static_cast<double>(k.kernel_needs_bytes());
  std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "kernel frames + 8-B handles", kn / kMiB,
               pct(kn, payload));
  std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "kernel + handle/zspage slabs (est.)",
               ks / kMiB, pct(ks, payload));
  std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "header-less layout (uzram), frames",
               static_cast<double>(k.frames_headerless) * 4096 / kMiB,
               pct(static_cast<double>(k.frames_headerless) * 4096, payload));
  for (const BackendRun& r : runs) {
    if (!r.ok || r.name.rfind("uzram", 0) != 0) continue;
    const JsonView f = JsonView(r.result)["points"]["fill"];
    const double frames = f["frames"].number_or(0) * 4096, used = f["used"].number_or(0);
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%  (frames only: %+.2f %%)\n",
                 (r.name + " at fill, frames + metadata").c_str(), used / kMiB, pct(used, payload),
                 pct(frames, payload));
  }

  if (const BackendRun* pool = find(runs, "uzram")) {
    const JsonView s = JsonView(pool->result)["survivors_layout"];
    const JsonView c = JsonView(pool->result)["points"]["compact"];
    const double live = c["payload"].number_or(0);
    const double kf = s["frames"].number_or(0) * 4096, uf = c["frames"].number_or(0) * 4096;
    const double meta = c["metadata"].number_or(0);
    std::fprintf(out,
                 "\nAfter freeing 75 %% and compacting: %.0f survivors, %.2f MiB live payload\n",
                 s["objects"].number_or(0), live / kMiB);
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "kernel layout of the survivors, frames",
                 kf / kMiB, pct(kf, live));
    const double hf = s["frames_headerless"].number_or(0) * 4096;
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "header-less layout, survivors, frames",
                 hf / kMiB, pct(hf, live));
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "uzram frames after compact()", uf / kMiB,
                 pct(uf, live));
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%  (high-water: does not shrink)\n",
                 "uzram metadata", meta / kMiB, 100.0 * meta / live);
    std::fprintf(out, "  %-40s %12.2f MiB  %+7.2f %%\n", "uzram used (frames + metadata)",
                 (uf + meta) / kMiB, pct(uf + meta, live));
  }

  std::fprintf(out, "\nTargets\n");
  for (const Target& t : evaluate_targets(info, runs)) {
    std::fprintf(out, "  [%s] %s\n         %s\n",
                 t.met == 1   ? "met"
                 : t.met == 0 ? "MISSED"
                              : "n/a",
                 t.what.c_str(), t.detail.c_str());
  }
}

std::string json_report(const RunInfo& info, const std::vector<BackendRun>& runs) {
  const LayoutTotals& k = info.kernel;
  Json doc = {{"model", info.model},
              {"corpus", info.corpus},
              {"objects", info.objects},
              {"churn", info.churn},
              {"seed", info.seed},
              {"repeat", info.repeat},
              {"machine", {{"cpu", info.cpu}, {"cpus", info.cpus}}}};
  doc["kernel_layout"] = {
      {"objects", k.objects},
      {"payload", k.payload_bytes},
      {"frames", k.frames},
      {"zspages", k.zspages},
      {"huge_objects", k.huge_objects},
      {"slab_bytes_est", k.slab_bytes_est},
      {"frames_headerless", k.frames_headerless},
      {"spanning_objects", k.spanning_objects},
      {"spanning_objects_headerless", k.spanning_objects_headerless},
      {"class_table_check", info.layout_check.empty() ? "ok" : info.layout_check}};
  Json& targets = doc["targets"] = Json::array();
  for (const Target& t : evaluate_targets(info, runs)) {
    targets.push_back({{"what", t.what},
                       {"status", t.met == 1   ? "met"
                                  : t.met == 0 ? "missed"
                                               : "n/a"},
                       {"detail", t.detail}});
  }
  Json& backends = doc["backends"] = Json::object();
  for (const BackendRun& r : runs) {
    Json& b = backends[r.name];
    if (!r.ok) {
      b = {{"error", r.error}};
      continue;
    }
    Json& median = b["median_ns_per_op"] = Json::object();
    const JsonView phases = JsonView(r.result)["phases"];
    if (phases.json().is_object()) {
      for (const auto& item : phases.json().items()) median[item.key()] = ns_per_op(r, item.key());
    }
    b["runs"] = r.reps;
  }
  return json_text(doc);
}

bool write_timeline(const std::string& path, const RunInfo& info,
                    const std::vector<BackendRun>& runs) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  // uzram-rwlock is left out: its layout, hence its memory, is uzram's by construction.
  std::vector<const BackendRun*> ok;
  for (const BackendRun& r : runs) {
    if (r.ok && r.name != "uzram-rwlock") ok.push_back(&r);
  }
  std::fprintf(f, "# uzram-bench timeline: %s, %llu objects, seed %llu\n", info.model.c_str(),
               static_cast<unsigned long long>(info.objects),
               static_cast<unsigned long long>(info.seed));
  std::fprintf(f, "# title: %s, %llu objects\n",
               info.corpus ? "lz4-compressed page corpus" : "lognormal size model",
               static_cast<unsigned long long>(info.objects));
  std::fprintf(f, "# memory in MiB: uzram = frames x 4096 + metadata; malloc = RSS delta\n");
  std::fprintf(f, "op phase payload");
  for (const BackendRun* r : ok) std::fprintf(f, " %s", r->name.c_str());
  std::fprintf(f, "\n");
  const JsonView base = ok.empty() ? JsonView(kNull) : JsonView(ok[0]->result)["timeline"];
  const std::size_t rows = base.size();
  int last_phase = -1;
  std::vector<std::pair<double, int>> starts;
  for (std::size_t i = 0; i < rows; i++) {
    const JsonView row = base[i];
    const double phase_number = row[1].number_or(-1);
    const bool known = phase_number >= 0 && phase_number < double{kNumPhases};
    const int phase = known ? static_cast<int>(phase_number) : -1;
    if (phase < 0) continue;  // a malformed row
    if (phase != last_phase) starts.push_back({row[0].number_or(0), phase});
    last_phase = phase;
    std::fprintf(f, "%.0f %s %.3f", row[0].number_or(0), kPhaseNames[phase],
                 row[2].number_or(0) / kMiB);
    for (const BackendRun* r : ok) {
      const JsonView other = JsonView(r->result)["timeline"][i];
      if (other.is_null() || other[0].number_or(-1) != row[0].number_or(-2)) {
        std::fprintf(f, " ?");
      } else {
        std::fprintf(f, " %.3f", other[3].number_or(0) / kMiB);
      }
    }
    std::fprintf(f, "\n");
  }
  std::fprintf(f, "\n\n# phases: start_op end_op phase\n");
  for (std::size_t i = 0; i < starts.size(); i++) {
    const double end = i + 1 < starts.size() ? starts[i + 1].first
                       : rows                ? base[rows - 1][0].number_or(0)
                                             : 0;
    std::fprintf(f, "%.0f %.0f %s\n", starts[i].first, end, kPhaseNames[starts[i].second]);
  }
  return std::fclose(f) == 0;
}

}  // namespace uzram::bench
