// store/streams.h - StreamPool: per-CPU compression streams for one algorithm (layer 3),
// the kernel's zcomp. Each stream owns a Codec, a 2-page compression buffer and a 1-page
// local copy, behind a mutex. get() picks the calling CPU's stream (sched_getcpu); the
// thread may migrate and keep using it: correctness comes from the mutex, locality is
// best-effort. Memory is bounded by the number of CPUs, not of threads.
//
// Thread safety: get()/Stream::put() from any thread. The stream mutex is sleepable
// (codec calls may block) and taken after the slot lock and before any pool lock.
#ifndef UZRAM_STORE_STREAMS_H_
#define UZRAM_STORE_STREAMS_H_

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "store/codec.h"

namespace uzram {

struct alignas(64) Stream {
  // Protects: codec, buffer, local_copy. Sleepable.
  std::mutex mu;
  std::unique_ptr<Codec> codec;
  alignas(64) unsigned char buffer[2 * 4096];
  alignas(64) unsigned char local_copy[4096];
};

class StreamPool {
 public:
  // Builds one stream per CPU (at least one). Errors: those of make_codec().
  [[nodiscard]] Result<void> init(const CodecSpec& spec, unsigned count = 0) noexcept;
  bool active() const noexcept { return !streams_.empty(); }
  unsigned size() const noexcept { return static_cast<unsigned>(streams_.size()); }
  const CodecSpec& spec() const noexcept { return spec_; }

  // Returns the calling CPU's stream, locked. Release with put().
  Stream& get() noexcept;
  // A codec any thread may decompress with, unlocked, when the algorithm's decompression
  // is stateless (Codec::decompress_is_stateless); else nullptr (use get()).
  Codec* stateless_decoder() const noexcept { return stateless_; }
  static void put(Stream& s) noexcept { s.mu.unlock(); }
  // The streams' bytes: the Stream objects and what their codecs hold (each stream's
  // mutex is taken in turn to ask its codec).
  std::size_t memory_bytes() const noexcept;

 private:
  CodecSpec spec_;
  std::vector<std::unique_ptr<Stream>> streams_;
  Codec* stateless_ = nullptr;  // streams_[0]'s codec when its decompression is stateless
};

}  // namespace uzram

#endif  // UZRAM_STORE_STREAMS_H_
