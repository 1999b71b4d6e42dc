// store/streams.h - StreamPool: per-CPU compression streams for one algorithm (layer 3),
// the kernel's zcomp. Each stream owns a Codec, a 2-page compression buffer and a 1-page
// local copy, behind a mutex; on a store with units also the unit buffers below. get() picks the
// calling CPU's stream (sched_getcpu); the thread may migrate and keep using it: correctness comes
// from the mutex, locality is best-effort. Memory is bounded by the number of CPUs, not of threads.
//
// Idle streams give their memory back (docs/store.md#streams): the codec's contexts and the
// unit buffers' pages, when the store's last user closes (sweep(true)) and when a stream was
// not taken for a whole period of the store's StreamTimer (sweep(false)); the next use makes
// them anew. Never for a pool built warm (a swap store's). Protocol:
// docs/locking.md#stream-release.
//
// Thread safety: get()/Stream::put() from any thread. The stream mutex is sleepable
// (codec calls may block) and taken after the slot lock and before any pool lock.
#ifndef UZRAM_STORE_STREAMS_H_
#define UZRAM_STORE_STREAMS_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "store/codec.h"
#include "sync/mutex.h"

namespace uzram {

class Worker;

// A store's timer for its streams' idle release: StoreImpl owns it, its worker's job runs
// StreamPool::sweep(false) on every pool and re-arms it while a stream still holds memory;
// the first use of a stream that holds none arms it. armed is seq_cst (the sweep clears it
// before looking at the streams, a user sets it after marking its stream under the stream's
// mutex: docs/locking.md#stream-release).
struct StreamTimer {
  Worker* worker = nullptr;  // null: no timer (streams go back only when the last user closes)
  std::chrono::milliseconds period{0};
  std::atomic<bool> armed{false};  // a sweep is due
  void arm() noexcept;             // sets the timer unless armed
};

// Unmaps a stream's unit buffers (a fresh mapping: its pages are resident once written).
struct UnitMemUnmap {
  std::size_t bytes = 0;
  void operator()(unsigned char* p) const noexcept;
};

// The fields are not ZS_GUARDED_BY(mu): get() hands the stream out locked and put()
// unlocks it in another function, a hold the analysis cannot name (both are exempt).
struct alignas(64) Stream {
  // Protects: codec, buffer, local_copy and the unit buffers and cache. Level: stream.
  // Sleepable.
  Mutex mu{LockLevel::stream, "stream"};
  std::unique_ptr<Codec> codec;
  alignas(64) unsigned char buffer[2 * 4096];
  alignas(64) unsigned char local_copy[4096];

  // Units (docs/units.md#reads; none when unit_bytes is 0): one mapping of 5 x unit_bytes,
  // its pages resident once used: a compression buffer of 2 x unit_bytes, a gather buffer of
  // unit_bytes (a large object's read_begin always copies), and the decoded-unit cache of
  // kUnitCacheEntries units, keyed (unit index, version), cache[0] the most recently used.
  // An entry with version 0 is empty (versions start at 1).
  static constexpr unsigned kUnitCacheEntries = 2;
  struct CachedUnit {
    std::uint64_t unit = 0;
    std::uint64_t version = 0;
    unsigned char* data = nullptr;
    std::size_t ready = 0;  // its first `ready` bytes are decoded (a prefix, or all of it)
  };
  std::size_t unit_bytes = 0;
  std::unique_ptr<unsigned char[], UnitMemUnmap> unit_mem;
  unsigned char* unit_cbuf = nullptr;
  unsigned char* unit_gather = nullptr;
  CachedUnit cache[kUnitCacheEntries];
  // The entry (its data) whose decoding the codec can continue (Codec::decompress_more):
  // it holds a prefix of its unit, whose compressed bytes are still in unit_gather. Cleared
  // by whoever writes unit_gather or decodes into another entry; nullptr: none.
  const unsigned char* resumable = nullptr;

  // The idle release (StreamPool::sweep), under mu: holds = the codec or the unit buffers
  // may hold memory gathered by use since the last release; used = taken since the last
  // sweep; releases = times this stream gave its memory back.
  bool holds = false;
  bool used = false;
  std::uint64_t releases = 0;

  // The cache entry holding (unit, version), moved to the front; nullptr if none.
  CachedUnit* cache_find(std::uint64_t unit, std::uint64_t version) noexcept;
  // The entry to decode `unit` into, moved to the front and emptied: an empty one, else
  // the one holding the unit before it (a sequential reader's last, done with), else the
  // least recently used.
  CachedUnit* cache_take(std::uint64_t unit) noexcept;
};

class StreamPool {
 public:
  // Builds one stream per CPU (at least one), with unit buffers when unit_bytes is not 0
  // (a store's unit_size above 4 KiB). warm: run a page (and a unit) through each codec
  // now, so that every work space the codec sizes on first use is allocated and touched
  // here (a store for swap: serving takes no memory from the kernel), and never given back;
  // else a codec's contexts and the unit buffers' pages come on first use and go back
  // when idle (sweep), timed by `timer` (null: only by sweep(true)). Errors: those of
  // make_codec(), no_memory.
  [[nodiscard]] Result<void> init(const CodecSpec& spec, unsigned count = 0,
                                  std::size_t unit_bytes = 0, bool warm = true,
                                  StreamTimer* timer = nullptr) noexcept;
  bool active() const noexcept { return !streams_.empty(); }
  unsigned size() const noexcept { return static_cast<unsigned>(streams_.size()); }
  const CodecSpec& spec() const noexcept { return spec_; }

  // Returns the calling CPU's stream, locked. Release with put().
  Stream& get() noexcept ZS_NO_THREAD_SAFETY_ANALYSIS;
  // For a block read of a unit: the stream whose decoded-unit cache holds (unit, version),
  // or else the unit before it (a sequential reader's: decoding there replaces it), or else
  // an empty entry, looked for with try_lock in each stream; else get(). Locked. So several
  // readers share all the streams' entries instead of evicting each other's units from their
  // CPU's.
  Stream& get_for_unit(std::uint64_t unit,
                       std::uint64_t version) noexcept ZS_NO_THREAD_SAFETY_ANALYSIS;
  // A free stream, locked with try_lock only (so a holder of another pool's stream may
  // call it: same lock level), or nullptr when all are busy.
  Stream* try_get() noexcept ZS_NO_THREAD_SAFETY_ANALYSIS;
  // A codec any thread may decompress with, unlocked, when the algorithm's decompression
  // is stateless (Codec::decompress_is_stateless); else nullptr (use get()).
  Codec* stateless_decoder() const noexcept { return stateless_; }
  static void put(Stream& s) noexcept ZS_NO_THREAD_SAFETY_ANALYSIS { s.mu.unlock(); }
  // The streams' bytes: the Stream objects, what their codecs hold, and the resident
  // pages of their unit buffers (each stream's mutex is taken in turn).
  std::size_t memory_bytes() const noexcept;
  // Gives back the memory of every stream that holds some and is not in use now (all), or
  // was not taken since the last sweep (!all); a stream in use is skipped, never waited
  // for (try_lock). Returns whether a stream may still hold memory (kept, or busy): the
  // timer's job sweeps again a period later. Nothing on a pool built warm (returns false).
  bool sweep(bool all) noexcept;
  // The streams' releases so far (each stream's mutex is taken in turn).
  std::uint64_t releases() const noexcept;

 private:
  Stream& taken(Stream& s) noexcept;  // marks a stream just locked for use (holds, used)

  CodecSpec spec_;
  bool releasable_ = false;       // built lazily (not warm): sweep gives memory back
  StreamTimer* timer_ = nullptr;  // the store's; null: none
  std::vector<std::unique_ptr<Stream>> streams_;
  Codec* stateless_ = nullptr;  // streams_[0]'s codec when its decompression is stateless
};

}  // namespace uzram

#endif  // UZRAM_STORE_STREAMS_H_
