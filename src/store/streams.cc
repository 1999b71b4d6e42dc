// store/streams.cc - per-CPU compression streams.
#include "store/streams.h"

#include <sched.h>
#include <sys/mman.h>

#include <new>
#include <thread>
#include <utility>

#include "store/unit.h"
#include "sync/lock_order.h"
#include "sync/worker.h"
#include "util/resident.h"

namespace uzram {

namespace {

// One page through the codec and back: libraries that size their work space on first use
// (zstd's compression context, zlib's inflate window) allocate it now, so that serving a
// block later needs no memory from the kernel (docs/uzram-serve.md#swap).
// With units, a unit through it too (zstd sizes its context by the input's size).
void warm_up(Stream& s) noexcept {
  const auto fill = [](unsigned char* p, std::size_t len) {
    for (std::size_t i = 0; i < len; i++) {
      p[i] = static_cast<unsigned char>(i % 251 < 128 ? i * 2654435761u >> 13 : 0);
    }
  };
  fill(s.local_copy, sizeof s.local_copy);
  auto n = s.codec->compress(s.local_copy, sizeof s.local_copy, s.buffer, sizeof s.buffer);
  if (n) (void)s.codec->decompress(s.buffer, *n, s.local_copy, sizeof s.local_copy);
  if (!s.unit_bytes) return;
  unsigned char* unit = s.cache[0].data;
  fill(unit, s.unit_bytes);
  n = s.codec->compress(unit, s.unit_bytes, s.unit_cbuf, 2 * s.unit_bytes);
  if (n) (void)s.codec->decompress(s.unit_cbuf, *n, unit, s.unit_bytes);
  const std::size_t piece = unit::piece_bytes(static_cast<std::uint32_t>(s.unit_bytes));
  n = s.codec->compress_pieces(unit, s.unit_bytes, s.unit_cbuf, 2 * s.unit_bytes, piece);
  if (n) (void)s.codec->decompress_prefix(s.unit_cbuf, *n, unit, s.unit_bytes, 4096);
}

// The unit buffers of a stream (streams.h), one allocation.
bool add_unit_buffers(Stream& s, std::size_t unit_bytes) noexcept {
  constexpr unsigned kParts = 3 + Stream::kUnitCacheEntries;
  void* p = ::mmap(nullptr, kParts * unit_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  s.unit_mem = {static_cast<unsigned char*>(p), UnitMemUnmap{kParts * unit_bytes}};
  s.unit_bytes = unit_bytes;
  s.unit_cbuf = s.unit_mem.get();
  s.unit_gather = s.unit_cbuf + 2 * unit_bytes;
  for (unsigned k = 0; k < Stream::kUnitCacheEntries; k++) {
    s.cache[k].data = s.unit_gather + (1 + k) * unit_bytes;
  }
  return true;
}

// A stream of `spec` with its unit buffers (unit_bytes 0: none), not warmed up.
Result<std::unique_ptr<Stream>> make_stream(const CodecSpec& spec,
                                            std::size_t unit_bytes) noexcept {
  auto codec = make_codec(spec);
  if (!codec) return codec.error();
  std::unique_ptr<Stream> s(new (std::nothrow) Stream);
  if (!s) return Errc::no_memory;
  s->codec = std::move(codec).value();
  if (unit_bytes && !add_unit_buffers(*s, unit_bytes)) return Errc::no_memory;
  return s;
}

// Gives a stream's memory back (under its mutex): the codec's contexts, the unit buffers'
// pages (the mapping stays; its pages come back zeroed on the next use), with the
// decoded-unit cache they held.
void release_stream(Stream& s) noexcept {
  // false: the contexts are kept as they are (still correct), and the stream still holds
  // them: the next sweep tries again.
  const bool kept = s.codec->can_release_memory() && !s.codec->release_memory();
  if (s.unit_mem) {
    (void)::madvise(s.unit_mem.get(), s.unit_mem.get_deleter().bytes, MADV_DONTNEED);
    for (Stream::CachedUnit& c : s.cache) {
      c.unit = c.version = 0;
      c.ready = 0;
    }
    s.resumable = nullptr;
  }
  s.holds = kept;
  s.used = false;
  s.releases++;
}

}  // namespace

void StreamTimer::arm() noexcept {
  // A timer that could not be set (no thread) leaves it unarmed: the next use tries again.
  if (worker && !armed.exchange(true) && !worker->kick_after(period)) armed.store(false);
}

void UnitMemUnmap::operator()(unsigned char* p) const noexcept { ::munmap(p, bytes); }

Result<void> StreamPool::init(const CodecSpec& spec, unsigned count, std::size_t unit_bytes,
                              bool warm, StreamTimer* timer) noexcept {
  if (count == 0) count = std::thread::hardware_concurrency();
  if (count == 0) count = 1;
  spec_ = spec;
  std::vector<std::unique_ptr<Stream>> streams;
  streams.reserve(count);
  for (unsigned i = 0; i < count; i++) {
    auto s = make_stream(spec, unit_bytes);
    if (!s) return s.error();
    if (warm) warm_up(**s);
    streams.push_back(std::move(s).value());
  }
  if (!warm) {
    // A throwaway stream through the warm-up: the codec library's first calls (the
    // loader's lazy binding of its symbols, its one-time tables) happen now, before
    // `uzram serve` drops its startup text (util/text_drop.h), while the streams' own
    // contexts and unit buffers stay untouched until first used.
    if (auto t = make_stream(spec, unit_bytes)) warm_up(**t);
  }
  streams_ = std::move(streams);
  // Nothing to give back (a 4 KiB store whose codec keeps only what it was built with):
  // no sweeps, no timer.
  releasable_ = !warm && (unit_bytes != 0 || streams_[0]->codec->can_release_memory());
  timer_ = releasable_ ? timer : nullptr;
  stateless_ = streams_[0]->codec->decompress_is_stateless() ? streams_[0]->codec.get() : nullptr;
  return {};
}

std::size_t StreamPool::memory_bytes() const noexcept {
  std::size_t bytes = 0;
  for (const auto& s : streams_) {
    MutexLock l(s->mu);
    bytes += sizeof(Stream) + s->codec->memory_bytes() +
             resident_bytes_of(s->unit_mem.get(), s->unit_mem.get_deleter().bytes);
  }
  return bytes;
}

bool StreamPool::sweep(bool all) noexcept {
  if (!releasable_) return false;
  bool again = false;
  for (auto& p : streams_) {
    Stream& s = *p;
    if (!s.mu.try_lock()) {  // in use: not idle
      again = true;
      continue;
    }
    if (s.holds && (all || !s.used)) {
      release_stream(s);
    } else if (s.holds) {
      s.used = false;  // taken during this period: looked at again the next
      again = true;
    }
    s.mu.unlock();
  }
  return again;
}

std::uint64_t StreamPool::releases() const noexcept {
  std::uint64_t n = 0;
  for (const auto& s : streams_) {
    MutexLock l(s->mu);
    n += s->releases;
  }
  return n;
}

Stream& StreamPool::taken(Stream& s) noexcept {
  if (releasable_) {
    s.used = true;
    if (!s.holds) {
      s.holds = true;
      if (timer_) timer_->arm();  // after marking it, under its mutex (the sweep's pairing)
    }
  }
  return s;
}

// The calling CPU's stream when it is free; else any free one (a thread that migrated, or
// two threads sharing a CPU, must not sleep through another's whole compression while a
// stream sits idle); only when all are busy, wait for the CPU's own.
Stream& StreamPool::get() noexcept {
  might_sleep();
  const int cpu = sched_getcpu();
  const unsigned n = static_cast<unsigned>(streams_.size());
  const unsigned mine = static_cast<unsigned>(cpu < 0 ? 0 : cpu) % n;
  for (unsigned k = 0; k < n; k++) {
    Stream& s = *streams_[(mine + k) % n];
    if (s.mu.try_lock()) return taken(s);
  }
  Stream& s = *streams_[mine];
  s.mu.lock();
  return taken(s);
}

Stream& StreamPool::get_for_unit(std::uint64_t unit, std::uint64_t version) noexcept {
  might_sleep();
  const int cpu = sched_getcpu();
  const unsigned n = static_cast<unsigned>(streams_.size());
  const unsigned mine = static_cast<unsigned>(cpu < 0 ? 0 : cpu) % n;
  unsigned before = n, vacant = n;  // the streams holding unit - 1, an empty entry
  for (unsigned k = 0; k < n; k++) {
    const unsigned i = (mine + k) % n;
    Stream& s = *streams_[i];
    if (!s.unit_bytes || !s.mu.try_lock()) continue;
    for (const Stream::CachedUnit& c : s.cache) {
      if (c.version == 0) {
        if (vacant == n) vacant = i;
        continue;
      }
      if (c.unit == unit && c.version == version) return taken(s);
      if (c.unit + 1 == unit && before == n) before = i;
    }
    s.mu.unlock();
  }
  if (before == n) before = vacant;
  if (before == n) return get();
  Stream& s = *streams_[before];
  s.mu.lock();
  return taken(s);
}

Stream* StreamPool::try_get() noexcept {
  for (auto& s : streams_) {
    if (s->mu.try_lock()) return &taken(*s);
  }
  return nullptr;
}

Stream::CachedUnit* Stream::cache_find(std::uint64_t unit, std::uint64_t version) noexcept {
  for (unsigned k = 0; k < kUnitCacheEntries; k++) {
    if (cache[k].version == version && cache[k].unit == unit && version != 0) {
      for (; k > 0; k--) std::swap(cache[k], cache[k - 1]);
      return &cache[0];
    }
  }
  return nullptr;
}

Stream::CachedUnit* Stream::cache_take(std::uint64_t unit) noexcept {
  unsigned k = kUnitCacheEntries - 1;  // an empty entry, else unit - 1's, else the LRU
  bool empty = false;
  for (unsigned j = 0; j < kUnitCacheEntries && !empty; j++) {
    empty = cache[j].version == 0;
    if (empty || cache[j].unit + 1 == unit) k = j;
  }
  for (; k > 0; k--) std::swap(cache[k], cache[k - 1]);
  cache[0].version = 0;
  return &cache[0];
}

}  // namespace uzram
