// Tails of large objects in a larger class (docs/units.md#tails-in-a-larger-class): a tail
// that would open a zspage in its own class takes a free slot of the smallest larger
// normal class within tail_spill_limit instead. Checks that tails spill only under that
// rule, that objects of at most 4096 bytes never do, and that reads, writes, frees,
// compaction, migration and pack of spilled tails keep every object intact (a reference
// model, check_invariants after every mutation; seeded: UZRAM_TEST_SEED replays).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "pool/geometry.h"
#include "pool/pool_internal.h"
#include "testing/seed.h"
#include "uzram/pool.h"

namespace uzram {
namespace {

std::unique_ptr<Pool> make_pool(std::size_t max_object_size,
                                TranslationMode mode = TranslationMode::validated) {
  PoolOptions o;
  o.name = "tails";
  o.max_bytes = std::size_t{1} << 30;
  o.max_object_size = max_object_size;
  auto r = create_pool(o, mode);
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? std::move(r).value() : nullptr;
}

// Live objects per class index.
std::vector<std::uint64_t> used_by_class(const Pool& pool) {
  std::vector<std::uint64_t> used(512, 0);
  for (const ClassStats& c : pool.class_stats()) used[c.index] = c.obj_used;
  return used;
}

// The real normal classes above `own` (in order) up to the first one past `limit`.
std::vector<unsigned> classes_above(const Geometry& g, unsigned own, std::size_t limit) {
  std::vector<unsigned> out;
  for (unsigned i = own + 1; i < kSlots; i++) {
    if (!g.is_real(i) || g.info(i).huge) continue;
    out.push_back(i);
    if (g.info(i).size > limit) break;
  }
  return out;
}

struct Obj {
  Handle h;
  std::vector<unsigned char> data;
};

void fill(Random& rng, std::vector<unsigned char>& b, std::size_t len) {
  for (std::size_t i = 0; i < len; i++) b[i] = static_cast<unsigned char>(rng.uniform(256));
}

Obj make_obj(Pool& pool, Random& rng, std::size_t size) {
  Obj o;
  auto h = pool.alloc(size);
  EXPECT_TRUE(h.has_value()) << size << ": " << h.error().message();
  if (!h) return o;
  o.h = *h;
  o.data.resize(size);
  fill(rng, o.data, size);
  pool.write(o.h, o.data.data(), size);
  return o;
}

template <typename... O>
void free_all(Pool& pool, const O&... o) {
  (pool.free(o.h), ...);
  pool.check_invariants();
  EXPECT_EQ(pool.total_pages(), 0u);
}

void expect_obj(Pool& pool, const Obj& o) {
  ASSERT_EQ(pool.object_size(o.h), o.data.size());
  std::vector<unsigned char> local(kMaxLargeObjectSize);
  const void* p = pool.read_begin(o.h, local.data());
  const int cmp = std::memcmp(p, o.data.data(), o.data.size());
  pool.read_end(o.h, p);
  ASSERT_EQ(cmp, 0) << "object of " << o.data.size() << " bytes differs from the model";
}

TEST(TailSpillTest, Limit) {
  const std::size_t tmax = Geometry(8).max_tail();
  EXPECT_EQ(tail_spill_limit(1, tmax), 1 + kTailSpillSlack);
  EXPECT_EQ(tail_spill_limit(1000, tmax), 1000 + kTailSpillSlack);
  EXPECT_EQ(tail_spill_limit(tmax - 1, tmax), tmax);  // never into the huge class
}

// Each placement of the rule, one at a time, in a fresh pool.
TEST(TailSpillTest, SpillsOnlyUnderTheRule) {
  const Geometry g(8);
  const std::size_t t = 1000;
  const unsigned own = g.class_of_slot(Geometry::slot_for(t));
  const std::size_t limit = tail_spill_limit(t, g.max_tail());
  const std::vector<unsigned> above = classes_above(g, own, limit);
  ASSERT_GE(above.size(), 3u);  // two classes within the limit, one past it
  const unsigned d1 = above[0], d2 = above[1], past = above.back();
  ASSERT_LE(g.info(d2).size, limit);
  ASSERT_GT(g.info(past).size, limit);
  Random rng(11);

  {  // No larger class has room: the tail opens its own class.
    auto pool = make_pool(65536);
    Obj a = make_obj(*pool, rng, g.info(past).size);  // room only past the limit
    Obj b = make_obj(*pool, rng, 8192 + t);
    pool->check_invariants();
    const auto used = used_by_class(*pool);
    EXPECT_EQ(used[own], 1u);
    EXPECT_EQ(used[past], 1u);
    EXPECT_EQ(pool->stats().tails_spilled, 0u);
    ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, a));
    ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, b));
    free_all(*pool, a, b);
  }
  {  // Two larger classes have room: the smallest takes it.
    auto pool = make_pool(65536);
    Obj a = make_obj(*pool, rng, g.info(d2).size);  // small objects: their own classes
    Obj b = make_obj(*pool, rng, g.info(d1).size);
    Obj c = make_obj(*pool, rng, 12288 + t);
    pool->check_invariants();
    auto used = used_by_class(*pool);
    EXPECT_EQ(used[own], 0u);
    EXPECT_EQ(used[d1], 2u);
    EXPECT_EQ(used[d2], 1u);
    EXPECT_EQ(pool->stats().tails_spilled, 1u);
    EXPECT_EQ(pool->object_size(c.h), 12288 + t);
    // An object of at most 4096 bytes never spills: it opens its own class.
    Obj s = make_obj(*pool, rng, t);
    used = used_by_class(*pool);
    EXPECT_EQ(used[own], 1u);
    EXPECT_EQ(used[d1], 2u);
    EXPECT_EQ(pool->stats().tails_spilled, 1u);
    // Now that its own class has room, a tail stays there.
    Obj e = make_obj(*pool, rng, 4096 + t);
    pool->check_invariants();
    used = used_by_class(*pool);
    EXPECT_EQ(used[own], 2u);
    EXPECT_EQ(used[d1], 2u);
    EXPECT_EQ(pool->stats().tails_spilled, 1u);
    for (const Obj* o : {&a, &b, &c, &s, &e}) ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, *o));
    // Freeing the spilled tail's object frees its slot in d1.
    pool->free(c.h);
    pool->check_invariants();
    EXPECT_EQ(used_by_class(*pool)[d1], 1u);
    free_all(*pool, a, b, s, e);
  }
  {  // A class spills kTailSpillZspages zspages' worth of its tails, then opens its own.
    auto pool = make_pool(65536);
    std::vector<Obj> objs;
    std::size_t spilled = 0;
    for (;;) {
      bool room = false;
      for (const ClassStats& c : pool->class_stats()) {
        if (c.index == d1) room = c.obj_used < c.obj_allocated;
      }
      if (!room) objs.push_back(make_obj(*pool, rng, g.info(d1).size));  // a fresh d1 zspage
      objs.push_back(make_obj(*pool, rng, 4096 + t));
      if (used_by_class(*pool)[own] != 0) break;
      ASSERT_LT(++spilled, 1000u);
    }
    pool->check_invariants();
    EXPECT_EQ(spilled, std::size_t{kTailSpillZspages} * g.info(own).objs_per_zspage);
    EXPECT_EQ(pool->stats().tails_spilled, spilled);
    objs.push_back(make_obj(*pool, rng, 4096 + t));  // own has room: no spill
    EXPECT_EQ(pool->stats().tails_spilled, spilled);
    for (const Obj& o : objs) ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, o));
    // The cap counts tails out now, not ever: free the spilled ones, fill own's zspage
    // with small objects (which never spill), and the next tail spills again.
    std::vector<Obj> kept;
    for (const Obj& o : objs) {
      if (o.data.size() == 4096 + t && used_by_class(*pool)[d1] > 0 && kept.size() < 2 * spilled) {
        pool->free(o.h);
      } else {
        kept.push_back(o);
      }
    }
    pool->check_invariants();  // L5: the freed tails are no longer counted out
    for (;;) {
      bool room = false;
      for (const ClassStats& c : pool->class_stats()) {
        if (c.index == own) room = c.obj_used < c.obj_allocated;
      }
      if (!room) break;
      kept.push_back(make_obj(*pool, rng, t));
    }
    const std::uint64_t before = pool->stats().tails_spilled;
    kept.push_back(make_obj(*pool, rng, 4096 + t));
    EXPECT_EQ(pool->stats().tails_spilled, before + 1);
    pool->check_invariants();
    for (const Obj& o : kept) ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, o));
    for (const Obj& o : kept) pool->free(o.h);
    pool->check_invariants();
    EXPECT_EQ(pool->total_pages(), 0u);
  }
  {  // A spilled tail whose run cannot be made is freed and given back to its class's cap.
    PoolOptions o;
    o.name = "tails-limit";
    o.max_bytes = 16 * 4096;  // 16 frames in all
    o.max_object_size = 65536;
    o.huge_pages = false;
    auto created = create_pool(o, TranslationMode::validated);
    ASSERT_TRUE(created.has_value()) << created.error().message();
    auto pool = std::move(created).value();
    Obj a = make_obj(*pool, rng, g.info(d1).size);  // d1 has room
    std::vector<Handle> frames;
    for (int i = 0; i < 32; i++) {
      auto h = pool->alloc(4096);  // the huge class: one frame each, until the limit
      if (!h) break;
      frames.push_back(*h);
    }
    auto r = pool->alloc(8 * 4096 + t);  // the tail would spill into d1; the run fails
    EXPECT_FALSE(r.has_value());
    pool->check_invariants();  // L5: nothing counted out
    EXPECT_EQ(pool->stats().tails_spilled, 0u);
    EXPECT_EQ(used_by_class(*pool)[d1], 1u);
    pool->free(a.h);
    for (const Handle h : frames) pool->free(h);
    pool->check_invariants();
    EXPECT_EQ(pool->total_pages(), 0u);
  }
  {  // A tail at the largest normal class has nowhere larger to go (never the huge class).
    auto pool = make_pool(65536);
    const std::size_t big = g.max_tail() - 20;
    const unsigned big_own = g.class_of_slot(Geometry::slot_for(big));
    Obj b = make_obj(*pool, rng, 4096);  // a zspage of the huge class, full
    Obj a = make_obj(*pool, rng, 4096 + big);
    pool->check_invariants();
    EXPECT_EQ(used_by_class(*pool)[big_own], 1u);
    EXPECT_EQ(pool->stats().tails_spilled, 0u);
    ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, a));
    ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, b));
    free_all(*pool, a, b);
  }
}

// Tails in a narrow band, so most spill; sizes of 2 and 3 frames plus tails, some small.
std::size_t banded_size(Random& rng, std::size_t max) {
  switch (rng.uniform(8)) {
    case 0: return rng.range(1, 4096);
    case 1: return std::min(max, 4096 * rng.range(2, max / 4096));
    default: return std::min(max, 4096 * rng.range(1, 3) + rng.range(700, 1400));
  }
}

class TailSpillOpsTest : public ::testing::TestWithParam<TranslationMode> {};

// Random operations against a model, with compaction, migration and pack moving spilled
// tails; check_invariants (L4: every tail where the rule allows) after each mutation.
TEST_P(TailSpillOpsTest, MatchesModel) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  Random rng(seed * 17 + (GetParam() == TranslationMode::kernel_rwlock));
  const std::size_t max = 16384;
  auto pool = make_pool(max, GetParam());
  ASSERT_NE(pool, nullptr);
  std::vector<Obj> objs;
  std::size_t migrated = 0;
  for (int op = 0; op < 3000; op++) {
    SCOPED_TRACE(::testing::Message() << "op " << op);
    const std::uint64_t r = rng.uniform(100);
    if (objs.empty() || (r < 40 && objs.size() < 300)) {
      objs.push_back(make_obj(*pool, rng, banded_size(rng, max)));
    } else if (r < 55) {  // rewrite a prefix, or all (the tail with it)
      Obj& o = objs[rng.uniform(objs.size())];
      const std::size_t len = rng.range(1, o.data.size());
      fill(rng, o.data, len);
      pool->write(o.h, o.data.data(), len);
    } else if (r < 65) {
      ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, objs[rng.uniform(objs.size())]));
      continue;
    } else if (r < 80) {
      const std::size_t i = rng.uniform(objs.size());
      ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, objs[i]));
      pool->free(objs[i].h);
      objs[i] = std::move(objs.back());
      objs.pop_back();
    } else if (r < 85) {
      std::vector<Handle> batch;
      for (std::size_t k = rng.range(1, 10); k && !objs.empty(); k--) {
        const std::size_t i = rng.uniform(objs.size());
        batch.push_back(objs[i].h);
        objs[i] = std::move(objs.back());
        objs.pop_back();
      }
      pool->free_batch(batch.data(), batch.size());
    } else if (r < 89) {
      pool->compact();
    } else if (r < 98) {
      const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
      auto res = migrate_frame(*pool, static_cast<std::uint32_t>(rng.uniform(frames + 1)));
      if (res) {
        migrated++;
      } else {
        ASSERT_EQ(res.error(), Errc::invalid_argument) << res.error().message();
      }
    } else {
      pack(*pool, rng.range(1, 8));
    }
    pool->check_invariants();
  }
  for (const Obj& o : objs) ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, o));
  EXPECT_GT(pool->stats().tails_spilled, 50u);
  EXPECT_GT(migrated, 0u);
  // Every frame of every zspage moves (spilled tails' zspages among them), then all go.
  const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
  for (std::uint32_t f = 0; f < frames; f++) (void)migrate_frame(*pool, f);
  pool->check_invariants();
  for (const Obj& o : objs) ASSERT_NO_FATAL_FAILURE(expect_obj(*pool, o));
  std::vector<Handle> hs;
  for (const Obj& o : objs) hs.push_back(o.h);
  pool->free_batch(hs.data(), hs.size());
  pool->flush_deferred();
  pool->check_invariants();
  EXPECT_EQ(pool->total_pages(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, TailSpillOpsTest,
                         ::testing::Values(TranslationMode::validated,
                                           TranslationMode::kernel_rwlock),
                         [](const auto& i) {
                           return i.param == TranslationMode::validated ? "validated"
                                                                        : "kernel_rwlock";
                         });

// Threads allocating, rewriting, reading and freeing large objects whose tails spill, while
// another compacts and migrates (TSan: the room hints are read with no lock).
TEST(TailSpillTest, ConcurrentWithCompactionAndMigration) {
  const std::uint64_t seed = testing::test_seed();
  SCOPED_TRACE(testing::seed_trace(seed));
  auto pool = make_pool(16384);
  ASSERT_NE(pool, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread mover([&] {
    Random rng(seed + 99);
    while (!stop.load()) {
      pool->compact();
      const auto frames = static_cast<std::uint32_t>(pool->stats().arena_frames);
      for (int k = 0; k < 20; k++)
        (void)migrate_frame(*pool, static_cast<std::uint32_t>(rng.uniform(frames + 1)));
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; w++) {
    workers.emplace_back([&, w] {
      Random rng(seed * 3 + static_cast<std::uint64_t>(w));
      std::vector<Obj> mine;
      std::vector<unsigned char> local(kMaxLargeObjectSize);
      for (int op = 0; op < 1500; op++) {
        if (mine.size() < 40 || rng.uniform(2) == 0) {
          const std::size_t size = banded_size(rng, 16384);
          auto h = pool->alloc(size);
          if (!h) {
            bad++;
            continue;
          }
          Obj o{*h, std::vector<unsigned char>(size)};
          fill(rng, o.data, size);
          pool->write(o.h, o.data.data(), size);
          mine.push_back(std::move(o));
        } else {
          const std::size_t i = rng.uniform(mine.size());
          const void* p = pool->read_begin(mine[i].h, local.data());
          if (std::memcmp(p, mine[i].data.data(), mine[i].data.size()) != 0) bad++;
          pool->read_end(mine[i].h, p);
          pool->free(mine[i].h);
          mine[i] = std::move(mine.back());
          mine.pop_back();
        }
      }
      for (const Obj& o : mine) pool->free(o.h);
    });
  }
  for (auto& t : workers) t.join();
  stop = true;
  mover.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(pool->stats().tails_spilled, 0u);
  pool->flush_deferred();
  pool->check_invariants();
  EXPECT_EQ(pool->total_pages(), 0u);
}

}  // namespace
}  // namespace uzram
