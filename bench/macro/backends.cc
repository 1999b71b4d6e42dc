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
    PoolOptions o;
    o.translation = mode;
    auto p = Pool::create(o);
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

void write_point(JsonWriter& w, const char* key, const MemPoint& m) {
  w.begin_object(key)
      .count("live", m.live)
      .count("payload", m.payload)
      .count("used", m.used)
      .count("rss", m.rss)
      .count("frames", m.frames)
      .count("metadata", m.metadata)
      .end_object();
}

void write_result(JsonWriter& w, const WorkloadResult& r) {
  w.begin_object("phases");
  for (int p = 0; p < kNumPhases; p++) {
    w.begin_object(kPhaseNames[p]).count("ops", r.time[p].ops).num("ns", r.time[p].ns).end_object();
  }
  w.end_object();
  w.begin_object("points");
  write_point(w, "fill", r.at_fill);
  write_point(w, "free75", r.after_free);
  write_point(w, "compact", r.after_compact);
  write_point(w, "churn_free75", r.after_churn_free);
  write_point(w, "churn_compact", r.after_churn_compact);
  w.end_object();
  w.begin_object("reads").count("total", r.reads).count("copied", r.reads_copied).end_object();
  w.begin_object("survivors_layout")
      .count("objects", r.survivors.objects)
      .count("payload", r.survivors.payload_bytes)
      .count("frames", r.survivors.frames)
      .count("frames_headerless", r.survivors.frames_headerless)
      .count("slab_bytes_est", r.survivors.slab_bytes_est)
      .end_object();
  w.begin_array("timeline");
  for (const Sample& s : r.timeline) {
    w.begin_array().num(static_cast<double>(s.op)).num(s.phase).num(static_cast<double>(s.payload));
    w.num(static_cast<double>(s.used)).num(static_cast<double>(s.rss)).end_array();
  }
  w.end_array();
}

}  // namespace

bool is_backend_name(const std::string& name) {
  return name == "uzram" || name == "uzram-rwlock" || name == "malloc";
}

std::string run_backend(const std::string& backend, const ObjectSource& source,
                        const WorkloadConfig& cfg) {
  JsonWriter w;
  w.begin_object().count("objects", cfg.objects).count("seed", cfg.seed);
  if (backend == "malloc") {
    const MallocInfo mi = detect_malloc();
    MallocBackend b(mi.name);
    const WorkloadResult r = Workload<MallocBackend>(b, source, cfg).run();
    w.str("backend", mi.name).str("allocator", mi.name + " " + mi.version);
    w.str("version", mi.version).str("release_call", b.release_call());
    write_result(w, r);
  } else {
    const bool rw = backend == "uzram-rwlock";
    PoolBackend b(backend.c_str(), rw ? TranslationMode::kernel_rwlock : TranslationMode::validated);
    const WorkloadResult r = Workload<PoolBackend>(b, source, cfg).run();
    const PoolStats s = b.pool().stats();
    w.str("backend", backend);
    w.str("allocator", rw ? "uzram Pool (kernel_rwlock)" : "uzram Pool (validated)");
    w.str("version", "").str("release_call", "Pool::compact() + release_idle_frames()");
    w.begin_object("pool")
        .count("pages_compacted", s.pages_compacted)
        .count("compactions", s.compactions)
        .count("compact_busy", s.compact_busy)
        .count("arena_frames", s.arena_frames)
        .count("huge_class_size", b.pool().huge_class_size())
        .end_object();
    write_result(w, r);
  }
  w.end_object();
  return w.text();
}

}  // namespace uzram::bench
