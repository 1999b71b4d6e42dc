// store/streams.cc - per-CPU compression streams.
#include "store/streams.h"

#include <sched.h>

#include <new>
#include <thread>

#include "sync/lock_order.h"

namespace uzram {

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
    streams.push_back(std::move(s));
  }
  streams_ = std::move(streams);
  return {};
}

Stream& StreamPool::get() noexcept {
  might_sleep();
  const int cpu = sched_getcpu();
  Stream& s = *streams_[static_cast<unsigned>(cpu < 0 ? 0 : cpu) % streams_.size()];
  s.mu.lock();
  return s;
}

}  // namespace uzram
