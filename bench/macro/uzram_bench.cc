// bench/macro/uzram_bench.cc - uzram-bench: memory and speed of uzram::Pool against malloc
// on compressed-page-shaped objects. docs/benchmarks.md shows results and how to read them.
//
// The parent process builds the object model, computes the kernel's layout for the fill
// sizes, then runs each backend in a child (itself, with --run-backend; jemalloc and
// mimalloc through LD_PRELOAD) and collects the child's JSON. workload.h has the phases.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends.h"
#include "json.h"
#include "kernel_layout.h"
#include "object_source.h"
#include "report.h"
#include "sys_info.h"
#include "uzram/pool.h"

namespace uzram::bench {
namespace {

constexpr const char* kUsage =
    "usage: uzram-bench [--demo] [--objects N] [--churn N] [--seed S] [--corpus FILE]\n"
    "                   [--repeat K] [--json] [--timeline FILE] [--backends LIST]\n"
    "  --demo           the `make run` job: ~15 s on the lognormal model, report table\n"
    "  --objects N      objects to fill (default 200000)\n"
    "  --churn N        free+alloc operations in the churn phase (default: N objects)\n"
    "  --seed S         seed for sizes and victims (default 1)\n"
    "  --corpus FILE    objects = lz4-compressed 4 KiB pages of FILE instead of the model\n"
    "  --repeat K       run every backend K times, interleaved; speed = median (default 1)\n"
    "  --json           print one JSON object on stdout instead of the tables\n"
    "  --json-out FILE  also write that JSON object to FILE\n"
    "  --timeline FILE  write memory-over-operations data for scripts/plot-churn.gp\n"
    "  --backends LIST  comma list of uzram,uzram-rwlock,glibc,jemalloc,mimalloc (default all)\n"
    "  --run-backend B  (internal) run one backend in this process, print its JSON\n";

constexpr std::uint64_t kDemoObjects = 200000, kDemoRepeat = 3;
constexpr const char* kAllBackends = "uzram,uzram-rwlock,glibc,jemalloc,mimalloc";

struct Flags {
  WorkloadConfig cfg;
  std::string corpus, timeline, json_out, run_backend, backends = kAllBackends;
  std::uint64_t repeat = 1;
  bool json = false, demo = false;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "uzram-bench: %s (see uzram-bench --help)\n", why.c_str());
  std::exit(1);
}

std::uint64_t parse_count(const char* flag, const char* v, std::uint64_t min) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (errno || end == v || *end != '\0' || v[0] == '-' || n < min) {
    usage_error(std::string(flag) + " wants a number >= " + std::to_string(min) + ", not '" + v +
                "'");
  }
  return n;
}

Flags parse_flags(int argc, char** argv) {
  Flags f;
  bool objects_given = false, repeat_given = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--objects") {
      f.cfg.objects = parse_count("--objects", value(), 16);
      objects_given = true;
    } else if (a == "--churn") {
      f.cfg.churn = parse_count("--churn", value(), 1);
    } else if (a == "--seed") {
      f.cfg.seed = parse_count("--seed", value(), 0);
    } else if (a == "--repeat") {
      f.repeat = parse_count("--repeat", value(), 1);
      repeat_given = true;
    } else if (a == "--corpus") {
      f.corpus = value();
    } else if (a == "--json-out") {
      f.json_out = value();
    } else if (a == "--timeline") {
      f.timeline = value();
    } else if (a == "--backends") {
      f.backends = value();
    } else if (a == "--run-backend") {
      f.run_backend = value();
      if (!is_backend_name(f.run_backend)) usage_error("unknown backend '" + f.run_backend + "'");
    } else if (a == "--json") {
      f.json = true;
    } else if (a == "--demo") {
      f.demo = true;
    } else if (a == "--progress") {  // internal: the parent's stderr is a terminal
      f.cfg.progress = true;
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (f.demo && !f.corpus.empty()) usage_error("--demo runs the lognormal model; drop --corpus");
  if (f.demo && !objects_given) f.cfg.objects = kDemoObjects;
  if (f.demo && !repeat_given) f.repeat = kDemoRepeat;
  if (!f.cfg.churn) f.cfg.churn = f.cfg.objects;
  return f;
}

std::size_t huge_threshold() {
  // zs_huge_class_size(): the largest normal class minus 7 (Linux 6.18 mm/zsmalloc.c).
  for (const ClassGeometry& g : class_table(8)) {
    if (!g.huge) return g.size - (KernelLayout::kHeaderBytes - 1);
  }
  return kPageSize;
}

ObjectSource make_source(const Flags& f) {
  if (f.corpus.empty()) return ObjectSource::lognormal();
  ObjectSource s;
  std::string error;
  if (!ObjectSource::corpus(f.corpus, huge_threshold(), &s, &error)) {
    std::fprintf(stderr, "uzram-bench: %s\n", error.c_str());
    std::exit(2);
  }
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Runs one repetition of backend `name` in a child and folds it into `run`.
void run_child(BackendRun& run, const Flags& f, const std::string& preload) {
  const std::string& name = run.name;
  std::vector<std::string> args = {"--run-backend", name.rfind("uzram", 0) == 0 ? name : "malloc",
                                   "--objects",     std::to_string(f.cfg.objects),
                                   "--churn",       std::to_string(f.cfg.churn),
                                   "--seed",        std::to_string(f.cfg.seed)};
  if (!f.corpus.empty()) args.insert(args.end(), {"--corpus", f.corpus});
  if (f.cfg.progress) args.push_back("--progress");
  std::string raw;
  Json result;
  const int rc = run_self(args, preload, &raw);
  if (rc != 0) {
    run.error = "child exited with status " + std::to_string(rc);
  } else if (!parse_json(raw, &result) || !result.is_object()) {
    run.error = "the child's output is not a JSON object: '" + raw.substr(0, 60) + "'";
  } else if (const std::string got = JsonView(result)["backend"].string_or_empty();
             name != "uzram" && name != "uzram-rwlock" && got != name) {
    run.error = "LD_PRELOAD=" + preload + " gave " + got + ", not " + name;
  } else {
    add_repeat(run, result);
    return;
  }
  run.ok = false;
  std::fprintf(stderr, "uzram-bench: %s: %s\n", name.c_str(), run.error.c_str());
}

int run_parent(Flags& f) {
  f.cfg.progress = isatty(STDERR_FILENO) != 0;
  const ObjectSource source = make_source(f);
  RunInfo info;
  info.model = source.description();
  info.corpus = source.is_corpus();
  info.objects = f.cfg.objects;
  info.churn = f.cfg.churn;
  info.seed = f.cfg.seed;
  info.cpu = cpu_model();
  info.cpus = online_cpus();
  // The fill draws the first `objects` objects from Random(seed), as the children do.
  KernelLayout layout(8);
  Random sizes(f.cfg.seed);
  for (std::uint64_t i = 0; i < f.cfg.objects; i++) layout.add(source.draw(sizes).size);
  info.kernel = layout.totals();
  info.layout_check = layout.check_against_kernel_facts();

  info.repeat = f.repeat;
  std::vector<Preload> preloads = find_preloads();
  std::vector<BackendRun> runs;
  std::vector<std::string> preload_of;
  for (const std::string& name : split(f.backends)) {
    std::string preload;
    if (name == "jemalloc" || name == "mimalloc") {
      for (const Preload& p : preloads) {
        if (p.name == name) preload = p.path;
      }
      if (preload.empty()) {
        std::fprintf(stderr, "uzram-bench: %s is not installed, skipping it\n", name.c_str());
        continue;
      }
    } else if (name != "uzram" && name != "uzram-rwlock" && name != "glibc") {
      usage_error("unknown backend '" + name + "' in --backends");
    }
    runs.push_back({});
    runs.back().name = name;
    runs.back().ok = true;
    preload_of.push_back(preload);
  }
  for (std::uint64_t rep = 0; rep < f.repeat; rep++) {
    for (std::size_t i = 0; i < runs.size(); i++) {
      if (!runs[i].ok) continue;
      if (f.cfg.progress) {
        std::fprintf(stderr, "\r  %-16s run %llu/%llu starting...", runs[i].name.c_str(),
                     static_cast<unsigned long long>(rep + 1),
                     static_cast<unsigned long long>(f.repeat));
      }
      run_child(runs[i], f, preload_of[i]);
    }
  }
  for (BackendRun& r : runs) {
    if (r.ok) finish_repeats(r);
  }
  if (f.cfg.progress) std::fprintf(stderr, "\r%-60s\r", "");
  if (!f.timeline.empty() && !write_timeline(f.timeline, info, runs)) {
    std::fprintf(stderr, "uzram-bench: cannot write %s: %s\n", f.timeline.c_str(),
                 std::strerror(errno));
    return 2;
  }
  if (!f.json_out.empty()) {
    std::FILE* out = std::fopen(f.json_out.c_str(), "w");
    if (!out || std::fprintf(out, "%s\n", json_report(info, runs).c_str()) < 0 ||
        std::fclose(out) != 0) {
      std::fprintf(stderr, "uzram-bench: cannot write %s: %s\n", f.json_out.c_str(),
                   std::strerror(errno));
      return 2;
    }
  }
  if (f.json) {
    std::printf("%s\n", json_report(info, runs).c_str());
  } else {
    print_report(stdout, info, runs);
    if (f.demo) {
      std::printf(
          "\nscripts/bench.sh (make bench) runs the full comparison, with a page corpus, and\n"
          "plots memory over the run into docs/img/churn.png; docs/benchmarks.md explains it.\n");
    }
  }
  for (const BackendRun& r : runs) {
    if (!r.ok) return 2;
  }
  return 0;
}

}  // namespace
}  // namespace uzram::bench

int main(int argc, char** argv) {
  using namespace uzram::bench;
  Flags f = parse_flags(argc, argv);
  if (!f.run_backend.empty()) {
    const ObjectSource source = make_source(f);
    std::printf("%s\n", run_backend(f.run_backend, source, f.cfg).c_str());
    return 0;
  }
  return run_parent(f);
}
