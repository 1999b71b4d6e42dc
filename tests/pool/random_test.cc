// Randomized operation sequences checked against a reference model (handle -> bytes):
// alloc / write / read / free / free_batch / compact / migrate_frame / pack, with
// check_invariants() after every mutation. Seeded: the seed is printed, UZRAM_TEST_SEED replays it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "testing/pool_helpers.h"
#include "testing/seed.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

using testing::fill_random;
using testing::make_pool;

// The model: live objects and their expected bytes, with O(1) random choice and removal.
class Model {
 public:
  void add(Handle h, std::vector<unsigned char> bytes) {
    index_[static_cast<std::uint64_t>(h)] = keys_.size();
    keys_.push_back(h);
    bytes_.push_back(std::move(bytes));
  }
  std::size_t pick(Random& rng) const { return rng.uniform(keys_.size()); }
  void remove(std::size_t i) {
    index_.erase(static_cast<std::uint64_t>(keys_[i]));
    if (i + 1 != keys_.size()) {
      keys_[i] = keys_.back();
      bytes_[i] = std::move(bytes_.back());
      index_[static_cast<std::uint64_t>(keys_[i])] = i;
    }
    keys_.pop_back();
    bytes_.pop_back();
  }
  bool contains(Handle h) const { return index_.count(static_cast<std::uint64_t>(h)) != 0; }
  std::size_t size() const { return keys_.size(); }
  Handle handle(std::size_t i) const { return keys_[i]; }
  std::vector<unsigned char>& bytes(std::size_t i) { return bytes_[i]; }

 private:
  std::vector<Handle> keys_;
  std::vector<std::vector<unsigned char>> bytes_;
  std::unordered_map<std::uint64_t, std::size_t> index_;
};

std::size_t random_size(Random& rng, std::size_t huge_size) {
  switch (rng.uniform(4)) {
    case 0: return rng.range(1, 256);
    case 1: return rng.range(huge_size - 3, huge_size + 3);  // the normal/huge boundary
    case 2: return rng.range(4088, kMaxObjectSize);
    default: return rng.range(1, kMaxObjectSize);
  }
}

void expect_object(Pool& pool, Model& m, std::size_t i, unsigned char* local) {
  const Handle h = m.handle(i);
  const auto& want = m.bytes(i);
  ASSERT_EQ(pool.object_size(h), want.size());
  const void* p = pool.read_begin(h, local);
  const int cmp = std::memcmp(p, want.data(), want.size());
  pool.read_end(h, p);
  ASSERT_EQ(cmp, 0) << "handle " << static_cast<std::uint64_t>(h) << " (" << want.size()
                    << " bytes) differs from the model";
}

class RandomOpsTest : public ::testing::TestWithParam<testing::ChainMode> {};

TEST_P(RandomOpsTest, MatchesModel) {
  const auto [chain, mode] = GetParam();
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed * 31 + chain * 2 + (mode == TranslationMode::kernel_rwlock));
  auto pool = make_pool(chain, mode);
  ASSERT_NE(pool, nullptr);
  const std::size_t huge = pool->huge_class_size();
  Model m;
  std::vector<unsigned char> local(kPageSize);
  std::size_t migrated = 0, compacted = 0, packed = 0, batched = 0;
  constexpr int kOps = 4000;
  constexpr std::size_t kMaxLive = 300;

  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE(::testing::Message() << "op " << op);
    const std::uint64_t r = rng.uniform(100);
    bool mutated = true;
    if (m.size() == 0 || (r < 35 && m.size() < kMaxLive)) {  // alloc + write
      const std::size_t size = random_size(rng, huge);
      auto h = pool->alloc(size);
      ASSERT_TRUE(h.has_value()) << h.error().message();
      ASSERT_FALSE(m.contains(*h)) << "handle handed out twice";
      std::vector<unsigned char> bytes(size);
      fill_random(rng, bytes.data(), size);
      pool->write(*h, bytes.data(), size);
      m.add(*h, std::move(bytes));
    } else if (r < 50) {  // rewrite a prefix (or all) of an object
      const std::size_t i = m.pick(rng);
      auto& bytes = m.bytes(i);
      const std::size_t len = rng.range(1, bytes.size());
      fill_random(rng, bytes.data(), len);
      pool->write(m.handle(i), bytes.data(), len);
    } else if (r < 65) {  // read
      ASSERT_NO_FATAL_FAILURE(expect_object(*pool, m, m.pick(rng), local.data()));
      mutated = false;
    } else if (r < 80) {  // free, after checking the bytes one last time
      const std::size_t i = m.pick(rng);
      ASSERT_NO_FATAL_FAILURE(expect_object(*pool, m, i, local.data()));
      pool->free(m.handle(i));
      m.remove(i);
    } else if (r < 92) {  // free_batch of 1..40 distinct live objects, with zeros mixed in
      const std::size_t k = rng.range(1, std::min<std::size_t>(40, m.size()));
      std::vector<Handle> batch;
      for (std::size_t j = 0; j < k; j++) {
        const std::size_t i = m.pick(rng);
        ASSERT_NO_FATAL_FAILURE(expect_object(*pool, m, i, local.data()));
        batch.push_back(m.handle(i));
        m.remove(i);
        if (rng.uniform(8) == 0) batch.push_back(Handle{0});
      }
      pool->free_batch(batch.data(), batch.size());
      batched += k;
    } else if (r < 94) {
      compacted += pool->compact();
    } else if (r < 98) {  // migrate a random frame (in use or not)
      const std::uint32_t frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
      const auto f = static_cast<std::uint32_t>(rng.uniform(frames + 2));
      auto res = migrate_frame(*pool, f);
      if (res) {
        EXPECT_NE(*res, f);
        migrated++;
      } else {
        ASSERT_EQ(res.error(), Errc::invalid_argument)
            << "frame " << f << ": " << res.error().message();
      }
    } else {
      packed += pack(*pool, rng.range(1, 8));
    }
    if (mutated) pool->check_invariants();
    ASSERT_EQ(pool->stats().objs_used, m.size());
  }
  for (std::size_t i = 0; i < m.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(expect_object(*pool, m, i, local.data()));
  }
  EXPECT_GT(migrated, 0u);
  EXPECT_GT(batched, 0u);
  EXPECT_EQ(pool->stats().migrations, migrated + packed);
  EXPECT_EQ(pool->stats().pages_compacted, compacted);
  std::vector<Handle> rest;  // the survivors in one batch, in random order
  while (m.size() > 0) {
    const std::size_t i = m.pick(rng);
    rest.push_back(m.handle(i));
    m.remove(i);
  }
  pool->free_batch(rest.data(), rest.size());
  pool->flush_deferred();
  pool->check_invariants();
  EXPECT_EQ(pool->total_pages(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, RandomOpsTest, testing::chain_mode_grid(),
                         testing::chain_mode_name);

}  // namespace
}  // namespace uzram
