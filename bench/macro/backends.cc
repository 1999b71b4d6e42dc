// bench/macro/backends.cc - the Pool and malloc backends and their JSON result.
//
// Result object: {backend, allocator, version, release_call, objects, seed,
//   phases: {<phase>: {ops, ns}}, points: {<point>: {live, payload, used, rss, frames, metadata}},
//   reads: {total, copied}, survivors_layout: {objects, payload, frames, frames_headerless,
//   slab_bytes_est} (kernel layout of the objects live after the first compaction),
//   pool: {...} (pool only), timeline: [[op, phase, payload, used, rss]]}
#include "backends.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "json.h"
#include "pool/pool_internal.h"
#include "sys_info.h"
#include "uzram/pool.h"

namespace uzram::bench {

namespace {

[[noreturn]] void die(const char* backend, const char* what) {
  std::fprintf(stderr, "uzram-bench: %s: %s\n", backend, what);
  std::exit(3);
}

class PoolBackend {
 public:
  PoolBackend(const char* name, TranslationMode mode) : name_(name) {
    auto p = create_pool(PoolOptions{}, mode);
    if (!p) die(name, ("Pool::create failed: " + p.error().message()).c_str());
    pool_ = std::move(*p);
  }
  const char* name() const { return name_; }
  Pool& pool() { return *pool_; }

  Handle alloc_write(const Object& o) {
    const Result<Handle> h = pool_->alloc(o.size);
    if (!h) die(name_, ("alloc failed: " + h.error().message()).c_str());
    pool_->write(*h, o.data, o.size);
    return *h;
  }
  void free(Handle h, std::uint32_t) { pool_->free(h); }
  bool read(Handle h, std::uint32_t size, void* dst) {
    const void* p = pool_->read_begin(h, bounce_);
    std::memcpy(dst, p, size);
    pool_->read_end(h, p);
    return p == bounce_;
  }
  bool verify(Handle h, const Object& o) {
    if (pool_->object_size(h) != o.size) return false;
    const void* p = pool_->read_begin(h, bounce_);
    const bool same = std::memcmp(p, o.data, o.size) == 0;
    pool_->read_end(h, p);
    return same;
  }
  void measure(MemPoint* m) {
    const PoolStats s = pool_->stats();
    m->frames = s.total_pages;
    m->metadata = s.metadata_bytes;
    m->used = s.total_pages * kPageSize + s.metadata_bytes;
  }
  // Compaction, then the idle frames it left go back at once (the decay would return them
  // within decay_ms): like malloc_trim, the call returns memory to the OS.
  void compact() {
    pool_->compact();
    pool_->release_idle_frames();
  }

 private:
  const char* name_;
  std::unique_ptr<Pool> pool_;
  alignas(64) unsigned char bounce_[kPageSize];
};

class MallocBackend {
 public:
  explicit MallocBackend(std::string name) : name_(std::move(name)) {}
  const char* name() const { return name_.c_str(); }

  void* alloc_write(const Object& o) {
    void* p = std::malloc(o.size);
    if (!p) die(name(), "malloc failed");
    std::memcpy(p, o.data, o.size);
    return p;
  }
  void free(void* p, std::uint32_t) { std::free(p); }
  bool read(void* p, std::uint32_t size, void* dst) {
    std::memcpy(dst, p, size);
    return false;
  }
  bool verify(void* p, const Object& o) { return std::memcmp(p, o.data, o.size) == 0; }
  void measure(MemPoint* m) { m->used = m->rss; }
  void compact() { release_call_ = release_free_memory(); }
  const char* release_call() const { return release_call_; }

 private:
  std::string name_;
  const char* release_call_ = "";
};

Json point(const MemPoint& m) {
  return {{"live", m.live}, {"payload", m.payload}, {"used", m.used},
          {"rss", m.rss},   {"frames", m.frames},   {"metadata", m.metadata}};
}

void write_result(Json& doc, const WorkloadResult& r) {
  Json& phases = doc["phases"] = Json::object();
  for (int p = 0; p < kNumPhases; p++) {
    phases[kPhaseNames[p]] = {{"ops", r.time[p].ops}, {"ns", r.time[p].ns}};
  }
  doc["points"] = {{"fill", point(r.at_fill)},
                   {"free75", point(r.after_free)},
                   {"compact", point(r.after_compact)},
                   {"churn_free75", point(r.after_churn_free)},
                   {"churn_compact", point(r.after_churn_compact)}};
  doc["reads"] = {{"total", r.reads}, {"copied", r.reads_copied}};
  doc["survivors_layout"] = {{"objects", r.survivors.objects},
                             {"payload", r.survivors.payload_bytes},
                             {"frames", r.survivors.frames},
                             {"frames_headerless", r.survivors.frames_headerless},
                             {"slab_bytes_est", r.survivors.slab_bytes_est}};
  Json& timeline = doc["timeline"] = Json::array();
  for (const Sample& s : r.timeline) timeline.push_back({s.op, s.phase, s.payload, s.used, s.rss});
}

}  // namespace

bool is_backend_name(const std::string& name) {
  return name == "uzram" || name == "uzram-rwlock" || name == "malloc";
}

std::string run_backend(const std::string& backend, const ObjectSource& source,
                        const WorkloadConfig& cfg) {
  Json doc = {{"objects", cfg.objects}, {"seed", cfg.seed}};
  if (backend == "malloc") {
    const MallocInfo mi = detect_malloc();
    MallocBackend b(mi.name);
    const WorkloadResult r = Workload<MallocBackend>(b, source, cfg).run();
    doc["backend"] = mi.name;
    doc["allocator"] = mi.name + " " + mi.version;
    doc["version"] = mi.version;
    doc["release_call"] = b.release_call();
    write_result(doc, r);
  } else {
    const bool rw = backend == "uzram-rwlock";
    PoolBackend b(backend.c_str(),
                  rw ? TranslationMode::kernel_rwlock : TranslationMode::validated);
    const WorkloadResult r = Workload<PoolBackend>(b, source, cfg).run();
    const PoolStats s = b.pool().stats();
    doc["backend"] = backend;
    doc["allocator"] = rw ? "uzram Pool (kernel_rwlock)" : "uzram Pool (validated)";
    doc["version"] = "";
    doc["release_call"] = "Pool::compact() + release_idle_frames()";
    doc["pool"] = {{"pages_compacted", s.pages_compacted},
                   {"compactions", s.compactions},
                   {"compact_busy", s.compact_busy},
                   {"arena_frames", s.arena_frames},
                   {"huge_class_size", b.pool().huge_class_size()}};
    write_result(doc, r);
  }
  return json_text(doc);
}

}  // namespace uzram::bench
