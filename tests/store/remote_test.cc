// The remote backing tier (backing_dev nbd+unix://...) against `nbdkit memory`: writeback,
// read-back, packed compressed writeback, trims of freed blocks, the counters; a remote
// killed mid-run (writeback fails and keeps the RAM copies, reads of blocks only the remote
// held fail with EIO and count, then a restarted - empty - remote is reconnected to and
// those blocks keep failing), a hung remote (timeouts, never a hang), a durable remote
// (nbdkit file) that keeps its data across a restart, TLS, and the URIs refused.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "store/nbdkit_server.h"
#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT
using Clock = std::chrono::steady_clock;

// Waits (up to 20 s: a busy machine) until pred() holds.
template <typename Pred>
bool eventually(Pred pred) {
  const auto end = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_nbdkit()) GTEST_SKIP() << "nbdkit not installed (Debian: nbdkit)";
    rng_ = std::make_unique<Random>(test_seed());
  }

  std::unique_ptr<Store> store(const std::string& uri, std::uint64_t blocks, bool compressed,
                               const char* timeout_ms = nullptr) {
    auto r = Store::create("zram-remote");
    EXPECT_TRUE(r.has_value());
    std::unique_ptr<Store> s = std::move(r).value();
    write_attr_ok(*s, "comp_algorithm", "lz4");
    if (timeout_ms) write_attr_ok(*s, "backing_timeout_ms", timeout_ms);
    write_attr_ok(*s, "backing_dev", uri);
    if (compressed) write_attr_ok(*s, "compressed_writeback", "1");
    write_attr_ok(*s, "disksize", std::to_string(blocks * kBlockSize));
    return s;
  }
  // [0, n): every kind of page (random, text, nibbles, same-filled).
  void fill(Store& s, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; i++) {
      switch (i % 4) {
        case 0: model_.write(s, i, random_page(*rng_)); break;
        case 1: model_.write(s, i, text_page(*rng_)); break;
        case 2: model_.write(s, i, nibble_page(*rng_)); break;
        default: model_.write(s, i, same_page(i)); break;
      }
    }
  }
  Random& rng() { return *rng_; }

  Model model_;
  std::unique_ptr<Random> rng_;
};

TEST_F(RemoteTest, WritebackReadBackAndTrim) {
  SCOPED_TRACE(seed_trace(test_seed()));
  NbdkitServer remote({"memory", "4M"});
  ASSERT_TRUE(remote.start());
  auto s = store(remote.uri(), 512, false);
  EXPECT_EQ(*s->read_attr("backing_dev"), remote.uri() + "\n");
  fill(*s, 400);
  write_attr_ok(*s, "writeback", "page_indexes=0-399");
  s->check_invariants();
  BdStat bd = s->bd_stat();
  EXPECT_EQ(bd.bd_count, 300u);  // the same-filled quarter stays in the slot table
  EXPECT_EQ(bd.backing_blocks, 300u);
  EXPECT_EQ(bd.bd_writes, 300u);
  EXPECT_TRUE(bd.connected);
  EXPECT_EQ(s->mm_stat().compr_data_size, 0u);
  model_.verify(*s, 512);
  EXPECT_EQ(s->bd_stat().bd_reads, 300u);
  // Freed blocks are trimmed on the remote, in batches, and then reused.
  for (std::uint64_t i = 0; i < 200; i++) {
    if (i % 4 == 3) continue;
    ASSERT_TRUE(s->discard(i * kBlockSize, kBlockSize).has_value());
    model_.forget(i);
  }
  EXPECT_TRUE(eventually([&] { return s->bd_stat().trimmed == 150; })) << s->bd_stat().trimmed;
  s->check_invariants();
  fill(*s, 200);
  write_attr_ok(*s, "writeback", "page_indexes=0-199");
  EXPECT_EQ(s->bd_stat().bd_count, 300u);
  model_.verify(*s, 512);
  s->check_invariants();
  // debug_stat shows the tier.
  const std::string ds = *s->read_attr("debug_stat");
  EXPECT_NE(ds.find("backing_connected        1\n"), std::string::npos) << ds;
  EXPECT_NE(ds.find("backing_reconnects        0\n"), std::string::npos) << ds;
}

TEST_F(RemoteTest, PackedWritebackAndCompaction) {
  SCOPED_TRACE(seed_trace(test_seed()));
  NbdkitServer remote({"memory", "4M"});
  ASSERT_TRUE(remote.start());
  auto s = store(remote.uri(), 512, true);
  for (std::uint64_t i = 0; i < 300; i++) model_.write(*s, i, text_page(rng()));
  write_attr_ok(*s, "writeback", "page_indexes=0-299");
  s->check_invariants();
  BdStat bd = s->bd_stat();
  EXPECT_EQ(bd.bd_count, 300u);
  // Text pages compress to 1-2.5 KiB: packed, blocks hold about two, with little waste.
  EXPECT_LT(bd.backing_blocks * 10, bd.bd_count * 7) << bd.backing_blocks;
  EXPECT_GT(bd.backing_bytes * 100, bd.backing_blocks * kBlockSize * 95) << bd.backing_bytes;
  model_.verify(*s, 512);
  // Free two objects of three: blocks go sparse; compaction packs the rest again.
  for (std::uint64_t i = 0; i < 300; i++) {
    if (i % 3 == 0) continue;
    ASSERT_TRUE(s->discard(i * kBlockSize, kBlockSize).has_value());
    model_.forget(i);
  }
  const std::uint64_t before = s->bd_stat().backing_blocks;
  const std::uint64_t bytes = s->bd_stat().backing_bytes;
  write_attr_ok(*s, "writeback_compact", "1");  // blocks less than half live
  s->check_invariants();
  bd = s->bd_stat();
  EXPECT_GT(bd.compacted, 0u);
  EXPECT_LT(bd.backing_blocks, before);
  EXPECT_EQ(bd.backing_bytes, bytes);
  model_.verify(*s, 512);
  write_attr_ok(*s, "writeback_compact", "threshold=100");  // every block not full
  s->check_invariants();
  bd = s->bd_stat();
  EXPECT_LE(bd.backing_blocks, bytes / kBlockSize + 3) << before << " -> " << bd.backing_blocks;
  EXPECT_TRUE(eventually([&] { return s->bd_stat().trimmed >= before - bd.backing_blocks; }));
  model_.verify(*s, 512);
  s->check_invariants();
  for (const char* bad : {"0", "2", "threshold=0", "threshold=101", "threshold=x", "x=1"}) {
    std::string msg;
    auto r = s->write_attr("writeback_compact", bad, &msg);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument)) << bad;
    EXPECT_EQ(msg.rfind("writeback_compact: ", 0), 0u) << msg;
  }
}

// The remote dies mid-run (SIGKILL), comes back empty (nbdkit memory restarted).
TEST_F(RemoteTest, KilledRemoteFailsCleanlyAndIsReconnected) {
  SCOPED_TRACE(seed_trace(test_seed()));
  for (bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "packed" : "raw");
    model_ = Model{};
    NbdkitServer remote({"memory", "4M"});
    ASSERT_TRUE(remote.start());
    auto s = store(remote.uri(), 512, packed);
    for (std::uint64_t i = 0; i < 200; i++) {
      model_.write(*s, i, i % 2 ? text_page(rng()) : random_page(rng()));
    }
    write_attr_ok(*s, "writeback", "page_indexes=0-99");  // these live only on the remote
    ASSERT_EQ(s->bd_stat().bd_count, 100u);
    remote.kill_now();
    // Writeback fails at once and keeps every RAM copy.
    std::string msg;
    auto r = s->write_attr("writeback", "page_indexes=100-199", &msg);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), make_error_code(Errc::io_error)) << msg;
    EXPECT_NE(msg.find("unreachable"), std::string::npos) << msg;
    EXPECT_EQ(s->bd_stat().bd_count, 100u);
    for (std::uint64_t i = 100; i < 200; i++) EXPECT_EQ(slot_flags(*s, i) & slotf::kWb, 0u) << i;
    s->check_invariants();
    // Reads: remote-only blocks fail with EIO, each counted; the others read fine.
    Page buf;
    for (std::uint64_t i = 0; i < 200; i++) {
      auto rr = s->read(i, buf.data());
      if (i < 100) {
        ASSERT_FALSE(rr.has_value()) << i;
        EXPECT_EQ(rr.error(), make_error_code(Errc::io_error));
      } else {
        ASSERT_TRUE(rr.has_value()) << i;
        ASSERT_EQ(0, std::memcmp(buf.data(), model_.expected(i)->data(), kBlockSize)) << i;
      }
    }
    EXPECT_EQ(s->io_stat().failed_reads, 100u);
    EXPECT_EQ(s->bd_stat().failed_backing_reads, 100u);
    EXPECT_FALSE(s->bd_stat().connected);
    // A new, empty remote on the same socket: reconnected in the background.
    ASSERT_TRUE(remote.start());
    ASSERT_TRUE(eventually([&] { return s->bd_stat().connected; }));
    EXPECT_EQ(s->bd_stat().reconnects, 1u);
    // What the old remote held is gone for good: EIO, however often it is read.
    EXPECT_EQ(s->bd_stat().lost_blocks, s->bd_stat().backing_blocks);
    for (std::uint64_t i = 0; i < 100; i += 7) {
      EXPECT_FALSE(s->read(i, buf.data()).has_value()) << i;
    }
    // Writeback works again, and what it writes reads back.
    write_attr_ok(*s, "writeback", "page_indexes=100-199");
    EXPECT_EQ(s->bd_stat().bd_count, 200u);
    for (std::uint64_t i = 100; i < 200; i++) {
      ASSERT_TRUE(s->read(i, buf.data()).has_value()) << i;
      ASSERT_EQ(0, std::memcmp(buf.data(), model_.expected(i)->data(), kBlockSize)) << i;
    }
    // Lost blocks can be overwritten or discarded; their space comes back.
    for (std::uint64_t i = 0; i < 100; i++) {
      if (i % 2) {
        model_.write(*s, i, text_page(rng()));
      } else {
        ASSERT_TRUE(s->discard(i * kBlockSize, kBlockSize).has_value());
        model_.forget(i);
      }
    }
    EXPECT_EQ(s->bd_stat().lost_blocks, 0u);
    model_.verify(*s, 512);
    s->check_invariants();
  }
}

// A remote that stops answering (SIGSTOP): requests time out, nothing hangs; once it
// answers again the connection comes back and, the remote having kept its data, the
// blocks read back.
TEST_F(RemoteTest, HungRemoteTimesOutThenRecovers) {
  SCOPED_TRACE(seed_trace(test_seed()));
  NbdkitServer remote({"memory", "4M"});
  ASSERT_TRUE(remote.start());
  auto s = store(remote.uri(), 256, false, "300");
  EXPECT_EQ(*s->read_attr("backing_timeout_ms"), "300\n");
  for (std::uint64_t i = 0; i < 64; i++) model_.write(*s, i, random_page(rng()));
  write_attr_ok(*s, "writeback", "page_indexes=0-31");
  remote.pause();
  Page buf;
  const auto t0 = Clock::now();
  auto r = s->read(3, buf.data());
  EXPECT_FALSE(r.has_value());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  std::string msg;
  EXPECT_FALSE(s->write_attr("writeback", "page_indexes=32-63", &msg).has_value());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(20));
  for (std::uint64_t i = 32; i < 64; i++) {  // kept in RAM
    ASSERT_TRUE(s->read(i, buf.data()).has_value());
    ASSERT_EQ(0, std::memcmp(buf.data(), model_.expected(i)->data(), kBlockSize)) << i;
  }
  remote.resume();
  ASSERT_TRUE(eventually([&] { return s->bd_stat().connected; }));
  EXPECT_EQ(s->bd_stat().lost_blocks, 0u);  // the marker is still there: nothing was lost
  model_.verify(*s, 256);
  write_attr_ok(*s, "writeback", "page_indexes=32-63");
  model_.verify(*s, 256);
  s->check_invariants();
}

// A durable remote (nbdkit file) keeps written-back blocks across its own restart.
TEST_F(RemoteTest, DurableRemoteKeepsItsDataAcrossARestart) {
  SCOPED_TRACE(seed_trace(test_seed()));
  TempFile img;
  ASSERT_EQ(truncate(img.path().c_str(), 4 << 20), 0);
  NbdkitServer remote({"file", img.path()});
  ASSERT_TRUE(remote.start());
  auto s = store(remote.uri(), 256, true);
  for (std::uint64_t i = 0; i < 100; i++) model_.write(*s, i, text_page(rng()));
  write_attr_ok(*s, "writeback", "page_indexes=0-99");
  remote.kill_now();
  ASSERT_TRUE(remote.start());
  Page buf;
  ASSERT_TRUE(eventually([&] {
    (void)s->read(0, buf.data());  // a failed read is fine until it reconnects
    return s->bd_stat().connected;
  }));
  EXPECT_EQ(s->bd_stat().lost_blocks, 0u);
  model_.verify(*s, 256);
  s->check_invariants();
}

TEST_F(RemoteTest, TlsWithAPreSharedKey) {
  SCOPED_TRACE(seed_trace(test_seed()));
  TempDir dir;
  write_file(dir / "keys.psk", "alice:0123456789abcdef0123456789abcdef\n");
  NbdkitServer remote({"memory", "1M"});
  if (!remote.start({"--tls=require", "--tls-psk=" + (dir / "keys.psk")})) {
    GTEST_SKIP() << "nbdkit without TLS";
  }
  const std::string uri =
      "nbds+unix://alice@/?socket=" + remote.socket() + "&tls-psk-file=" + (dir / "keys.psk");
  // Without TLS, refused; with it, served.
  auto r0 = Store::create("zram-tls");
  std::unique_ptr<Store> plain = std::move(r0).value();
  std::string msg;
  EXPECT_FALSE(plain->write_attr("backing_dev", remote.uri(), &msg).has_value());
  EXPECT_NE(msg.find("backing_dev: cannot connect"), std::string::npos) << msg;
  auto s = store(uri, 64, false);
  for (std::uint64_t i = 0; i < 16; i++) model_.write(*s, i, random_page(rng()));
  write_attr_ok(*s, "writeback", "huge");
  model_.verify(*s, 64);
  EXPECT_EQ(s->bd_stat().bd_count, 16u);
}

TEST_F(RemoteTest, RefusedRemotes) {
  TempDir dir;
  const auto refused = [](const std::string& uri, const std::string& text) {
    auto r = Store::create("zram-refuse");
    std::unique_ptr<Store> s = std::move(r).value();
    write_attr_ok(*s, "backing_timeout_ms", "2000");
    std::string msg;
    auto w = s->write_attr("backing_dev", uri, &msg);
    ASSERT_FALSE(w.has_value()) << uri;
    EXPECT_EQ(msg.rfind("backing_dev: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(text), std::string::npos) << uri << ": " << msg;
    EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
  };
  refused("nbd+unix:///?socket=" + (dir / "nothing.sock"), "No such file or directory");
  refused("nbd+unix:///", "cannot use");  // no socket= parameter
  NbdkitServer ro({"memory", "1M"});
  ASSERT_TRUE(ro.start({"-r"}));
  refused(ro.uri(), "read-only export");
  NbdkitServer tiny({"memory", "4096"});
  ASSERT_TRUE(tiny.start());
  refused(tiny.uri(), "at least 8 KiB");
  // The store's lock was never taken: it stays usable.
  auto r = Store::create("zram-after");
  std::unique_ptr<Store> s = std::move(r).value();
  write_attr_ok(*s, "disksize", "64K");
}

}  // namespace
}  // namespace uzram
