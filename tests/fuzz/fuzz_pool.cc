// libFuzzer target: the input is a program of pool operations (alloc, write, read,
// free, free_batch, compact, migrate, pack) run against a reference model; every object's
// bytes are checked, and check_invariants() runs after each mutation. Option bytes pick
// the chain size, translation mode, decay (0: frames go back in free itself) and, with bit
// 0x10, a max_object_size above 4096 (large objects: runs + tails, a tail in a larger
// class when the spill rule allows: docs/units.md).
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "pool/pool_internal.h"
#include "uzram/pool.h"

namespace {

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t u8() {
    if (!n) return 0;
    n--;
    return *p++;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
};

void fill(std::vector<std::uint8_t>& v, std::uint8_t seed) {
  for (std::size_t i = 0; i < v.size(); i++) v[i] = static_cast<std::uint8_t>(seed + i * 31);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  uzram::PoolOptions o;
  const std::uint8_t opt = in.u8();
  o.chain_size = 4 + opt % 13;
  const auto mode =
      (opt & 0x80) ? uzram::TranslationMode::kernel_rwlock : uzram::TranslationMode::validated;
  o.decay_ms = (opt & 0x40) ? 0 : 10000;
  o.max_bytes = std::size_t{8} << 20;                             // small: exercise no_memory too
  if (opt & 0x10) o.max_object_size = 4096 * (2 + in.u8() % 15);  // 8 KiB..64 KiB
  auto created = uzram::create_pool(o, mode);
  if (!created) return 0;
  std::unique_ptr<uzram::Pool> pool = std::move(created).value();
  std::map<std::uint64_t, std::vector<std::uint8_t>> model;
  static std::uint8_t copy[65536];
  const std::size_t max = o.max_object_size;
  auto pick = [&](std::uint16_t k) {
    auto it = model.begin();
    std::advance(it, k % model.size());
    return it;
  };
  while (!in.empty()) {
    const std::uint8_t op = in.u8() % 9;
    if (op <= 2 || model.empty()) {  // alloc + write
      const std::size_t sz =
          max > 4096 ? (in.u16() | (in.u8() & 1) << 16) % (max + 2) : in.u16() % 4098;
      auto h = pool->alloc(sz);
      if (sz == 0 || sz > max) {
        if (h) __builtin_trap();
        continue;
      }
      if (!h) continue;  // no_memory in the small arena
      std::vector<std::uint8_t> bytes(sz);
      fill(bytes, in.u8());
      pool->write(*h, bytes.data(), sz);
      model[static_cast<std::uint64_t>(*h)] = std::move(bytes);
    } else if (op == 3) {  // read and compare
      auto it = pick(in.u16());
      const auto h = static_cast<uzram::Handle>(it->first);
      const void* p = pool->read_begin(h, copy);
      if (std::memcmp(p, it->second.data(), it->second.size()) != 0) __builtin_trap();
      pool->read_end(h, p);
    } else if (op == 4) {  // free
      auto it = pick(in.u16());
      pool->free(static_cast<uzram::Handle>(it->first));
      model.erase(it);
    } else if (op == 5) {  // partial overwrite
      auto it = pick(in.u16());
      const std::size_t len = it->second.size() ? in.u16() % it->second.size() + 1 : 0;
      for (std::size_t i = 0; i < len; i++) it->second[i] ^= 0x5a;
      pool->write(static_cast<uzram::Handle>(it->first), it->second.data(), len);
    } else if (op == 6) {
      pool->compact();
    } else if (op == 8) {  // free_batch of distinct live objects, zeros mixed in
      std::vector<uzram::Handle> batch;
      for (unsigned k = in.u8() % 24 + 1; k > 0 && !model.empty(); k--) {
        const std::uint8_t b = in.u8();
        if (b % 7 == 0) batch.push_back(uzram::Handle{0});
        auto it = pick(static_cast<std::uint16_t>(b | (in.u8() << 8)));
        batch.push_back(static_cast<uzram::Handle>(it->first));
        model.erase(it);
      }
      pool->free_batch(batch.data(), batch.size());
    } else {
      const auto frames = pool->stats().arena_frames;
      if (frames) (void)migrate_frame(*pool, in.u16() % frames);
      if (in.u8() % 4 == 0) (void)pack(*pool, 4);
    }
    pool->check_invariants();
  }
  std::vector<uzram::Handle> rest;
  for (auto& [h, bytes] : model) {
    const void* p = pool->read_begin(static_cast<uzram::Handle>(h), copy);
    if (std::memcmp(p, bytes.data(), bytes.size()) != 0) __builtin_trap();
    pool->read_end(static_cast<uzram::Handle>(h), p);
    rest.push_back(static_cast<uzram::Handle>(h));
  }
  if (opt & 0x20) {
    pool->free_batch(rest.data(), rest.size());
  } else {
    for (uzram::Handle h : rest) pool->free(h);
  }
  pool->flush_deferred();
  if (pool->total_pages() != 0) __builtin_trap();
  return 0;
}
