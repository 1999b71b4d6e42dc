// bench/micro/read_scaling_options.cc - uzram-read-scaling's command line.
#include <sys/sysinfo.h>

#include <algorithm>
#include <cstdlib>

#include "read_scaling.h"
#include "uzram/pool.h"

namespace uzram::bench {

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  for (std::size_t a = 0; a <= s.size();) {
    const std::size_t b = std::min(s.find(',', a), s.size());
    if (b > a) v.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return v;
}

}  // namespace

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "uzram-read-scaling: %s\nusage: uzram-read-scaling [--threads 1,2,4] [--seconds S] "
      "[--objects N] [--size B] [--sample-every N] [--seed S] [--churn F] [--bg compact,migrate] "
      "[--frame-cache N] "
      "[--modes LIST] "
      "[--json[=FILE]]\nmodes: memcpy,validated,validated+bg,kernel_rwlock,kernel_rwlock+bg\n",
      why);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i], v;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      v = a.substr(eq + 1);
      a.resize(eq);
    } else if (a != "--json" && a != "--help") {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      v = argv[++i];
    }
    if (a == "--threads") {
      for (const auto& t : split(v)) o.threads.push_back(static_cast<unsigned>(std::stoul(t)));
    } else if (a == "--seconds") {
      o.seconds = std::stod(v);
    } else if (a == "--objects") {
      o.objects = std::stoul(v);
    } else if (a == "--size") {
      o.size = std::stoul(v);
    } else if (a == "--sample-every") {
      o.sample_every = static_cast<unsigned>(std::stoul(v));
    } else if (a == "--seed") {
      o.seed = std::stoull(v);
    } else if (a == "--churn") {
      o.churn_fraction = std::stod(v);
    } else if (a == "--frame-cache") {
      o.frame_cache = std::stoul(v);
    } else if (a == "--bg") {
      const auto l = split(v);
      o.bg_compact = std::find(l.begin(), l.end(), "compact") != l.end();
      o.bg_migrate = std::find(l.begin(), l.end(), "migrate") != l.end();
    } else if (a == "--modes") {
      o.modes = split(v);
    } else if (a == "--json") {
      o.json = true;
      o.json_path = v;
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.threads.empty()) {
    const auto ncpu = static_cast<unsigned>(get_nprocs());
    for (unsigned t = 1; t < ncpu; t *= 2) o.threads.push_back(t);
    o.threads.push_back(ncpu);
  }
  if (o.modes.empty())
    o.modes = {"memcpy", "validated", "validated+bg", "kernel_rwlock", "kernel_rwlock+bg"};
  if (o.sample_every == 0 || (o.sample_every & (o.sample_every - 1)))
    usage("--sample-every must be a power of two");
  if (o.size < 8 || o.size > kMaxObjectSize || o.objects == 0 || o.seconds <= 0)
    usage("bad --size/--objects/--seconds");
  if (o.churn_fraction <= 0 || o.churn_fraction > 1) usage("--churn must be in (0, 1]");
  return o;
}

std::vector<ModeSpec> mode_specs(const Options& o) {
  std::vector<ModeSpec> modes;
  for (const auto& name : o.modes) {
    if (name != "memcpy" && name != "validated" && name != "validated+bg" &&
        name != "kernel_rwlock" && name != "kernel_rwlock+bg") {
      usage(("unknown mode " + name).c_str());
    }
    modes.push_back({name, name != "memcpy", name.rfind("kernel_rwlock", 0) == 0,
                     name.find("+bg") != std::string::npos});
  }
  return modes;
}

}  // namespace uzram::bench
