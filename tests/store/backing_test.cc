// Files named by attributes. The backing device's rules (store/backing.h): what backing_dev
// refuses and why (symbolic links, FIFOs, devices, pseudo files, other owners, loose modes,
// empty files), that it never blocks, exclusive use (flock), and durability: a written-back
// block's RAM copy is freed only after its write is known durable; failed writes or syncs
// keep it and count. Faults come from test seams (backing_testing::set_hooks) and, as root,
// from a full tmpfs. Dictionaries (algorithm_params dict=): read once, safely, at the write.
#include "store/backing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include "store/pp_test_helpers.h"

namespace uzram {
namespace {

using namespace uzram::testing;  // NOLINT

std::unique_ptr<Store> bare_store() {
  auto r = Store::create("zram-test");
  EXPECT_TRUE(r.has_value());
  return std::move(r).value();
}

// backing_dev=PATH must fail with `want` and a message containing `text`.
void expect_refused(const std::string& path, Errc want, const std::string& text) {
  auto s = bare_store();
  std::string msg;
  auto r = s->write_attr("backing_dev", path, &msg);
  ASSERT_FALSE(r.has_value()) << path;
  EXPECT_EQ(r.error(), make_error_code(want)) << path << ": " << msg;
  EXPECT_NE(msg.find("backing_dev: "), std::string::npos) << msg;
  EXPECT_NE(msg.find(text), std::string::npos) << path << ": " << msg;
  EXPECT_EQ(*s->read_attr("backing_dev"), "none\n");
}

void expect_refused(const std::string& path, std::errc want, const std::string& text) {
  auto s = bare_store();
  std::string msg;
  auto r = s->write_attr("backing_dev", path, &msg);
  ASSERT_FALSE(r.has_value()) << path;
  EXPECT_EQ(r.error(), want) << path << ": " << msg;
  EXPECT_NE(msg.find(text), std::string::npos) << path << ": " << msg;
}

class BackingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(truncate(file_.path().c_str(), 256 * kBlockSize), 0); }
  void TearDown() override { backing_testing::set_hooks(nullptr, nullptr); }
  TempFile file_;
};

TEST_F(BackingTest, RefusesWhatIsNotAPrivateRegularFileOrBlockDevice) {
  const std::string dir = file_.path() + ".d";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  expect_refused(dir, Errc::invalid_argument,
                 "is a directory, not a regular file or a block device");
  expect_refused("/dev/null", Errc::invalid_argument, "is a character device");
  expect_refused("/dev/zero", Errc::invalid_argument, "is a character device");
  expect_refused(dir + "/missing", Errc::invalid_argument, "No such file or directory");
  // A symbolic link, even to a good file: refused, and the message says so.
  const std::string link = dir + "/link";
  ASSERT_EQ(symlink(file_.path().c_str(), link.c_str()), 0);
  expect_refused(link, Errc::invalid_argument, "is a symbolic link: give the file itself");
  // Empty, or too small for one usable block.
  const std::string small = dir + "/small";
  ASSERT_EQ(close(open(small.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  expect_refused(small, Errc::invalid_argument, "is empty: the backing file is never grown");
  expect_refused(small, Errc::invalid_argument, "truncate -s SIZE " + small);
  ASSERT_EQ(truncate(small.c_str(), 4096), 0);
  expect_refused(small, Errc::invalid_argument, "at least 8 KiB");
  // Writable by others: they could rewrite written-back blocks.
  ASSERT_EQ(truncate(small.c_str(), 65536), 0);
  for (mode_t m : {mode_t{0666}, mode_t{0620}}) {
    ASSERT_EQ(chmod(small.c_str(), m), 0);
    expect_refused(small, std::errc::permission_denied, "writable by group or others");
  }
  ASSERT_EQ(chmod(small.c_str(), 0644), 0);  // readable is the user's choice
  auto s = bare_store();
  write_attr_ok(*s, "backing_dev", small);
  // Bad bytes in the value: an embedded NUL, an absurdly long path.
  expect_refused(std::string("/tmp/x\0y", 8), Errc::invalid_argument, "NUL");
  expect_refused("/" + std::string(100000, 'a'), Errc::invalid_argument, "cannot use");
  unlink(link.c_str());
  unlink(small.c_str());
  rmdir(dir.c_str());
}

TEST_F(BackingTest, AFifoIsRefusedAtOnce) {
  const std::string fifo = file_.path() + ".fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto s = bare_store();
  auto pending = std::async(std::launch::async, [&] {
    std::string msg;
    auto r = s->write_attr("backing_dev", fifo, &msg);
    return std::make_pair(r.has_value(), msg);
  });
  if (pending.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << "backing_dev=FIFO blocks";
    const int w = open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // unblock it, then fail
    pending.wait();
    close(w);
  }
  const auto [ok, msg] = pending.get();
  EXPECT_FALSE(ok);
  EXPECT_NE(msg.find("is a FIFO"), std::string::npos) << msg;
  // The store was never blocked: its lock is free.
  EXPECT_EQ(*s->read_attr("initstate"), "0\n");
  unlink(fifo.c_str());
}

TEST_F(BackingTest, RefusesFilesOfOtherUsersAndPseudoFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (chown, writable sysfs files)";
  TempFile other;
  ASSERT_EQ(truncate(other.path().c_str(), 65536), 0);
  ASSERT_EQ(chown(other.path().c_str(), 65534, 65534), 0);
  expect_refused(other.path(), std::errc::permission_denied,
                 "belongs to uid 65534, not to the server's uid 0");
  // Writable by root, regular, a page long: kernel interfaces, not storage.
  for (const char* p : {"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/ksm/run"}) {
    if (access(p, W_OK) != 0) continue;
    expect_refused(p, Errc::invalid_argument, "is on sysfs, a pseudo file system");
  }
}

TEST_F(BackingTest, OneStoreAtATime) {
  auto a = bare_store();
  auto b = bare_store();
  write_attr_ok(*a, "backing_dev", file_.path());
  std::string msg;
  auto r = b->write_attr("backing_dev", file_.path(), &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::busy));
  EXPECT_NE(msg.find("in use by another store"), std::string::npos) << msg;
  // Through a hard link too: the lock is on the file, not the name.
  const std::string hard = file_.path() + ".hard";
  ASSERT_EQ(link(file_.path().c_str(), hard.c_str()), 0);
  r = b->write_attr("backing_dev", hard, &msg);
  EXPECT_EQ(r.error(), make_error_code(Errc::busy)) << msg;
  // Initialised and used, then released by reset: the other store gets it.
  write_attr_ok(*a, "disksize", "1M");
  r = b->write_attr("backing_dev", file_.path(), &msg);
  EXPECT_EQ(r.error(), make_error_code(Errc::busy)) << msg;
  write_attr_ok(*a, "reset", "1");
  write_attr_ok(*b, "backing_dev", file_.path());
  write_attr_ok(*b, "backing_dev", "none");  // releases it as well
  write_attr_ok(*a, "backing_dev", hard);
  a.reset();  // destroying a store releases it
  write_attr_ok(*b, "backing_dev", file_.path());
  b.reset();
  // Another process's flock (another uzram) is honoured the same way.
  const int fd = open(file_.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);
  expect_refused(file_.path(), Errc::busy, "in use by another store");
  close(fd);
  unlink(hard.c_str());
}

// ---- dictionaries ---------------------------------------------------------------------------

// algorithm_params dict=PATH must fail with bad_dictionary and `text` in the message, at once.
void expect_dict_refused(const std::string& path, const std::string& text) {
  auto s = bare_store();
  write_attr_ok(*s, "comp_algorithm", "zstd");
  auto pending = std::async(std::launch::async, [&] {
    std::string msg;
    auto r = s->write_attr("algorithm_params", "algo=zstd dict=" + path, &msg);
    return std::make_pair(r.error(), msg);
  });
  if (pending.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << "dict=" << path << " blocks";
    const int w = open(path.c_str(), O_RDWR | O_NONBLOCK);  // unblock a FIFO's open
    pending.wait();
    close(w);
  }
  const auto [err, msg] = pending.get();
  EXPECT_EQ(err, make_error_code(Errc::bad_dictionary)) << path << ": " << msg;
  EXPECT_NE(msg.find("algorithm_params: dict=" + path + ": " + text), std::string::npos) << msg;
  write_attr_ok(*s, "disksize", "64K");  // nothing half-installed, nothing locked
}

TEST_F(BackingTest, DictionariesAreReadSafelyOnceWhenWritten) {
  const std::string base = file_.path();
  const std::string fifo = base + ".fifo", dir = base + ".dir", big = base + ".big",
                    empty = base + ".empty", dict = base + ".dict", link = base + ".link";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(close(open(empty.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_EQ(close(open(big.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_EQ(truncate(big.c_str(), (16 << 20) + 1), 0);  // sparse: costs nothing
  expect_dict_refused(fifo, "is a FIFO, not a regular file");
  expect_dict_refused("/dev/zero", "is a character device, not a regular file");
  expect_dict_refused(dir, "is a directory, not a regular file");
  expect_dict_refused(empty, "is empty");
  expect_dict_refused(big, "is 16777217 bytes, more than the 16 MiB");
  expect_dict_refused(base + ".missing", "No such file or directory");
  expect_dict_refused("/proc/self/status", "is on proc, a pseudo file system");
  // A good one, through a symbolic link (followed: dictionaries are only read). It is read
  // when written: removed before disksize, it is not needed again.
  Random rng(test_seed());
  std::string bytes;
  for (int i = 0; i < 64; i++) {
    const Page p = text_page(rng);
    bytes.append(reinterpret_cast<const char*>(p.data()), 1024);
  }
  {
    std::FILE* f = std::fopen(dict.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  ASSERT_EQ(symlink(dict.c_str(), link.c_str()), 0);
  auto s = bare_store();
  write_attr_ok(*s, "comp_algorithm", "lz4");
  write_attr_ok(*s, "algorithm_params", "algo=lz4 dict=" + link);
  unlink(link.c_str());
  unlink(dict.c_str());
  write_attr_ok(*s, "disksize", "1M");
  Model model;
  for (std::uint64_t i = 0; i < 32; i++) model.write(*s, i, text_page(rng));
  model.verify(*s, 32);
  s->check_invariants();
  for (const std::string& f : {fifo, empty, big}) unlink(f.c_str());
  rmdir(dir.c_str());
}

// ---- durability -----------------------------------------------------------------------------

std::atomic<int> g_syncs{0}, g_sync_errno{0}, g_writes{0}, g_write_errno{0};
std::atomic<std::uint64_t> g_fail_from_block{~std::uint64_t{0}};
std::atomic<Store*> g_store{nullptr};
std::atomic<std::uint64_t> g_bd_count_at_first_sync{~std::uint64_t{0}};

// Refuses O_DIRECT once (as a file system may at I/O time), so the store goes on buffered;
// fails writes from block g_fail_from_block on with g_write_errno.
ssize_t fake_pwritev(int fd, const iovec* iov, int cnt, off_t off) {
  g_writes++;
  if (fcntl(fd, F_GETFL) & O_DIRECT) {
    errno = EINVAL;
    return -1;
  }
  std::size_t len = 0;
  for (int i = 0; i < cnt; i++) len += iov[i].iov_len;
  if (g_write_errno.load() &&
      static_cast<std::uint64_t>(off) + len > g_fail_from_block.load() * kBlockSize) {
    errno = g_write_errno.load();
    return -1;
  }
  return pwritev(fd, iov, cnt, off);
}

int fake_sync(int fd) {
  if (g_syncs++ == 0 && g_store.load())
    g_bd_count_at_first_sync = g_store.load()->bd_stat().bd_count;
  if (g_sync_errno.load()) {
    errno = g_sync_errno.load();
    return -1;
  }
  return fdatasync(fd);
}

class DurabilityTest : public BackingTest {
 protected:
  void SetUp() override {
    BackingTest::SetUp();
    g_syncs = 0;
    g_sync_errno = 0;
    g_writes = 0;
    g_write_errno = 0;
    g_fail_from_block = ~std::uint64_t{0};
    g_bd_count_at_first_sync = ~std::uint64_t{0};
    rng_ = std::make_unique<Random>(test_seed());
    StoreConfig c;
    c.backing = file_.path();
    c.blocks = 256;
    s_ = make_store(c);
    g_store = s_.get();
    for (std::uint64_t i = 0; i < 100; i++) model_.write(*s_, i, random_page(*rng_));
  }
  void TearDown() override {
    g_store = nullptr;
    BackingTest::TearDown();
  }
  std::unique_ptr<Store> s_;
  Model model_;
  std::unique_ptr<Random> rng_;
};

TEST_F(DurabilityTest, BufferedBatchesAreSyncedBeforeTheirRamCopiesGo) {
  SCOPED_TRACE(seed_trace(test_seed()));
  backing_testing::set_hooks(fake_pwritev, fake_sync);
  write_attr_ok(*s_, "writeback", "huge");
  EXPECT_GT(g_writes.load(), 0);
  EXPECT_GE(g_syncs.load(), 1);
  EXPECT_EQ(g_bd_count_at_first_sync.load(), 0u);  // nothing published before the sync
  EXPECT_EQ(s_->bd_stat().bd_count, 100u);
  EXPECT_EQ(s_->bd_stat().failed_writebacks, 0u);
  EXPECT_EQ(s_->mm_stat().huge_pages, 0u);
  model_.verify(*s_, 256);
  s_->check_invariants();
}

TEST_F(DurabilityTest, AFailedSyncKeepsEveryRamCopyAndCounts) {
  SCOPED_TRACE(seed_trace(test_seed()));
  backing_testing::set_hooks(fake_pwritev, fake_sync);
  g_sync_errno = EIO;
  std::string msg;
  auto r = s_->write_attr("writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), make_error_code(Errc::io_error));
  EXPECT_NE(msg.find("100 block(s) not written back: Input/output error"), std::string::npos)
      << msg;
  EXPECT_EQ(s_->bd_stat().bd_count, 0u);
  EXPECT_EQ(s_->bd_stat().bd_writes, 0u);
  EXPECT_EQ(s_->bd_stat().failed_writebacks, 100u);
  EXPECT_EQ(s_->read_attr("debug_stat")
                ->rfind("version: 1\n0        0\nfailed_writebacks      100\n"
                        "backing_blocks        0\n",
                        0),
            0u);
  EXPECT_EQ(s_->mm_stat().huge_pages, 100u);  // still in RAM, as they were
  for (std::uint64_t i = 0; i < 100; i++)
    EXPECT_EQ(slot_flags(*s_, i) & (slotf::kWb | slotf::kPpSlot), 0u) << i;
  model_.verify(*s_, 256);
  s_->check_invariants();
  // The fault clears: the same blocks go out, into the blocks the failures gave back.
  g_sync_errno = 0;
  write_attr_ok(*s_, "writeback", "huge");
  EXPECT_EQ(s_->bd_stat().bd_count, 100u);
  model_.verify(*s_, 256);
  s_->check_invariants();
}

TEST_F(DurabilityTest, FailedWritesKeepTheirRamCopiesOthersGoOut) {
  SCOPED_TRACE(seed_trace(test_seed()));
  backing_testing::set_hooks(fake_pwritev, fake_sync);
  g_write_errno = ENOSPC;
  g_fail_from_block = 41;  // blocks 1..40 can be written
  std::string msg;
  auto r = s_->write_attr("writeback", "huge", &msg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  const BdStat bd = s_->bd_stat();
  EXPECT_GT(bd.bd_count, 0u);
  EXPECT_GT(bd.failed_writebacks, 0u);
  EXPECT_EQ(bd.bd_count + bd.failed_writebacks, 100u);
  EXPECT_EQ(s_->mm_stat().huge_pages, bd.failed_writebacks);
  model_.verify(*s_, 256);
  s_->check_invariants();
}

TEST_F(DurabilityTest, DirectWritesNeedNoSync) {
  SCOPED_TRACE(seed_trace(test_seed()));
  auto* b = impl(s_.get())->backing_.get();
  if (b->tier->volatile_writes()) GTEST_SKIP() << "no O_DIRECT on this file system";
  backing_testing::set_hooks(nullptr, fake_sync);
  write_attr_ok(*s_, "writeback", "huge");
  EXPECT_EQ(g_syncs.load(), 0);
  EXPECT_EQ(s_->bd_stat().bd_count, 100u);
  model_.verify(*s_, 256);
}

// A real ENOSPC: a sparse backing file on a 64 KiB tmpfs (root only).
TEST(BackingFullFileSystem, WritesThatDoNotFitStayInRam) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  char dir[] = "/tmp/uzram-enospc-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  if (mount("uzram-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") != 0) {
    rmdir(dir);
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  }
  const std::string file = std::string(dir) + "/backing";
  {
    const int fd = open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 1 << 20), 0);  // 256 blocks promised, 16 there
    close(fd);
    Random rng(test_seed());
    Model model;
    StoreConfig c;
    c.backing = file;
    c.blocks = 256;
    auto s = make_store(c);
    for (std::uint64_t i = 0; i < 64; i++) model.write(*s, i, random_page(rng));
    std::string msg;
    auto r = s->write_attr("writeback", "huge", &msg);
    EXPECT_FALSE(r.has_value());
    EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
    const BdStat bd = s->bd_stat();
    EXPECT_LE(bd.bd_count, 16u);
    EXPECT_GT(bd.failed_writebacks, 0u);
    EXPECT_EQ(bd.bd_count + bd.failed_writebacks, 64u);
    model.verify(*s, 256);
    s->check_invariants();
  }
  umount2(dir, MNT_DETACH);
  rmdir(dir);
}

}  // namespace
}  // namespace uzram
