// store/streams.cc - per-CPU compression streams.
#include "store/streams.h"

#include <sched.h>

#include <new>
#include <thread>

#include "sync/lock_order.h"

namespace uzram {

namespace {

// One page through the codec and back: libraries that size their work space on first use
// (zstd's compression context, zlib's inflate window) allocate it now, so that serving a
// block later needs no memory from the kernel (docs/uzram-serve.md#swap).
void warm_up(Stream& s) noexcept {
  for (std::size_t i = 0; i < sizeof s.local_copy; i++) {
    s.local_copy[i] = static_cast<unsigned char>(i % 251 < 128 ? i * 2654435761u >> 13 : 0);
  }
  auto n = s.codec->compress(s.local_copy, sizeof s.local_copy, s.buffer, sizeof s.buffer);
  if (n) (void)s.codec->decompress(s.buffer, *n, s.local_copy, sizeof s.local_copy);
}

}  // namespace

Result<void> StreamPool::init(const CodecSpec& spec, unsigned count) noexcept {
  if (count == 0) count = std::thread::hardware_concurrency();
  if (count == 0) count = 1;
  spec_ = spec;
  std::vector<std::unique_ptr<Stream>> streams;
  streams.reserve(count);
  for (unsigned i = 0; i < count; i++) {
    auto codec = make_codec(spec);
    if (!codec) return codec.error();
    std::unique_ptr<Stream> s(new (std::nothrow) Stream);
    if (!s) return Errc::no_memory;
    s->codec = std::move(codec).value();
    warm_up(*s);
    streams.push_back(std::move(s));
  }
  streams_ = std::move(streams);
  stateless_ = streams_[0]->codec->decompress_is_stateless() ? streams_[0]->codec.get() : nullptr;
  return {};
}

std::size_t StreamPool::memory_bytes() const noexcept {
  std::size_t bytes = 0;
  for (const auto& s : streams_) {
    MutexLock l(s->mu);
    bytes += sizeof(Stream) + s->codec->memory_bytes();
  }
  return bytes;
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
    if (s.mu.try_lock()) return s;
  }
  Stream& s = *streams_[mine];
  s.mu.lock();
  return s;
}

}  // namespace uzram
