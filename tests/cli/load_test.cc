// cli/load_test.cc - `uzram load`: exact mm_stat fields for generated images, --json, the
// -o / --then / --size / --algo handling and their errors.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_testing.h"

namespace uzram::testing {
namespace {

using cli::kExitFailed;
using cli::kExitOk;
using cli::kExitUsage;

class LoadTest : public ::testing::Test {
 protected:
  // zeros(8) | word(4) | random(5) | text(7) | 100 bytes of text (a zero-padded partial block)
  std::string mixed_image() {
    Random rng(42);
    std::string img;
    for (int i = 0; i < 8; i++) img += zero_block();
    for (int i = 0; i < 4; i++) img += word_block(0xdeadbeefcafebabeULL + static_cast<unsigned>(i));
    for (int i = 0; i < 5; i++) img += random_block(rng);
    for (unsigned i = 0; i < 7; i++) img += text_block(i);
    img += text_block(99).substr(0, 100);
    const std::string path = dir_ / "mixed.img";
    write_file(path, img);
    return path;
  }
  std::string image_of(const std::string& name, const std::string& bytes) {
    write_file(dir_ / name, bytes);
    return dir_ / name;
  }
  TempDir dir_;
};

TEST_F(LoadTest, JsonWithAnImageNameThatIsNotUtf8) {
  const CliResult r = run_cli({"load", image_of("bad\xff.img", zero_block()), "--json"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_NE(r.out.find("bad\xef\xbf\xbd.img\",\n"), std::string::npos) << r.out;  // U+FFFD
  EXPECT_EQ(json_u64(r.out, "same_pages"), 1u);
}

TEST_F(LoadTest, MixedImageExactFields) {
  const CliResult r = run_cli({"load", mixed_image(), "--json"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");  // no progress bar off a terminal
  EXPECT_EQ(json_u64(r.out, "image_bytes"), 24u * 4096 + 100);
  EXPECT_EQ(json_u64(r.out, "blocks"), 25u);
  EXPECT_EQ(json_u64(r.out, "disksize"), 25u * 4096);
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 25u * 4096);  // the partial block counts whole
  EXPECT_EQ(json_u64(r.out, "same_pages"), 12u);             // zeros and repeated words
  EXPECT_EQ(json_u64(r.out, "huge_pages"), 5u);
  EXPECT_EQ(json_u64(r.out, "huge_pages_since"), 5u);
  EXPECT_EQ(json_u64(r.out, "pages_compacted"), 0u);
  EXPECT_EQ(json_u64(r.out, "mem_limit"), 0u);
  EXPECT_EQ(json_u64(r.out, "failed_writes"), 0u);
  // 5 raw pages plus 8 compressed text blocks (much smaller than a page each).
  EXPECT_GT(json_u64(r.out, "compr_data_size"), 5u * 4096);
  EXPECT_LT(json_u64(r.out, "compr_data_size"), 9u * 4096);
  EXPECT_GE(json_u64(r.out, "mem_used_total"), json_u64(r.out, "compr_data_size"));
  EXPECT_EQ(json_u64(r.out, "mem_used_max"), json_u64(r.out, "mem_used_total"));
}

TEST_F(LoadTest, ZerosAreSamePagesAndCostNothing) {
  const CliResult r = run_cli({"load", image_of("z.img", std::string(1 << 20, '\0')), "--json"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 1u << 20);
  EXPECT_EQ(json_u64(r.out, "same_pages"), 256u);
  EXPECT_EQ(json_u64(r.out, "compr_data_size"), 0u);
  EXPECT_EQ(json_u64(r.out, "mem_used_total"), 0u);
  EXPECT_NE(r.out.find("\"mem_ratio\": null"), std::string::npos);  // undefined, not inf
}

TEST_F(LoadTest, RandomDataIsHuge) {
  Random rng(7);
  std::string img;
  for (int i = 0; i < 64; i++) img += random_block(rng);
  const CliResult r = run_cli({"load", image_of("r.img", img), "--json", "--algo", "lz4"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "huge_pages"), 64u);
  EXPECT_EQ(json_u64(r.out, "compr_data_size"), 64u * 4096);
  EXPECT_EQ(json_u64(r.out, "mem_used_total"), 64u * 4096);  // one frame per huge object
  EXPECT_EQ(json_u64(r.out, "same_pages"), 0u);
}

TEST_F(LoadTest, JobsDoNotChangeTheResult) {
  std::string img;
  Random rng(3);
  for (unsigned i = 0; i < 600; i++)
    img += i % 3 == 0 ? random_block(rng) : i % 3 == 1 ? text_block(i) : zero_block();
  const std::string path = image_of("j.img", img);
  const CliResult a = run_cli({"load", path, "--json"});
  const CliResult b = run_cli({"load", path, "--json", "-j", "4"});
  ASSERT_EQ(a.status, kExitOk) << a.err;
  ASSERT_EQ(b.status, kExitOk) << b.err;
  for (const char* f : {"orig_data_size", "compr_data_size", "same_pages", "huge_pages"}) {
    EXPECT_EQ(json_u64(a.out, f), json_u64(b.out, f)) << f;
  }
}

TEST_F(LoadTest, TextReportHasKernelMmStatAndSummary) {
  const CliResult r = run_cli({"load", mixed_image()});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_NE(r.out.find("mm_stat       102400 "), std::string::npos) << r.out;  // %8llu fields
  EXPECT_NE(r.out.find("\nNAME  DISKSIZE DATA COMPR ALGORITHM STREAMS ZERO-PAGES TOTAL MEM-LIMIT "
                       "MEM-USED MIGRATED COMP-RATIO\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nzram0     100K 100K "), std::string::npos) << r.out;
  for (const char* s : {"ratio ", "overhead ", "failed      0 writes", "MB/s"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST_F(LoadTest, UnknownAlgorithmIsRefused) {
  const CliResult r = run_cli({"load", mixed_image(), "--algo", "lz5"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("comp_algorithm: unknown algorithm 'lz5'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("available: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(LoadTest, AttributeBeforeAndAfterInit) {
  const CliResult r =
      run_cli({"load", mixed_image(), "--json", "-o", "comp_algorithm=zstd", "-o", "mem_limit=8M"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"algorithm\": \"zstd\""), std::string::npos);
  EXPECT_EQ(json_u64(r.out, "mem_limit"), 8u << 20);
}

TEST_F(LoadTest, MemLimitFailuresAreCountedNotFatal) {
  Random rng(11);
  std::string img;
  for (int i = 0; i < 256; i++) img += random_block(rng);
  const CliResult r = run_cli({"load", image_of("r.img", img), "--json", "-o", "mem_limit=64K"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "mem_limit"), 65536u);
  EXPECT_EQ(json_u64(r.out, "failed_writes"), 240u);  // 16 one-frame huge objects fit
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 16u * 4096);
  const CliResult t = run_cli({"load", dir_ / "r.img", "-o", "mem_limit=64K"});
  EXPECT_NE(t.out.find("failed      240 writes"), std::string::npos) << t.out;
}

TEST_F(LoadTest, AttributeErrors) {
  const std::string img = mixed_image();
  CliResult r = run_cli({"load", img, "-o", "nosuch=1"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("nosuch: no such attribute"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Try 'uzram --help' for more information."), std::string::npos);
  r = run_cli({"load", img, "-o", "mem_limit"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("attr=value"), std::string::npos) << r.err;
  r = run_cli({"load", img, "-o", "disksize=1M"});
  EXPECT_EQ(r.status, kExitUsage);
  r = run_cli({"load", img, "-o", "mem_limit=lots"});  // the store refuses, naming it
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("mem_limit: invalid size 'lots'"), std::string::npos) << r.err;
  r = run_cli({"load", img, "-o", "initstate=1"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("initstate: read-only attribute"), std::string::npos) << r.err;
  r = run_cli({"load", img, "-o", "algorithm_params=algo=nosuch level=3"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("algorithm_params:"), std::string::npos) << r.err;
}

TEST_F(LoadTest, ThenCompactAndIdle) {
  const CliResult r =
      run_cli({"load", mixed_image(), "--json", "--then", "compact", "--then", "idle all"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"command\": \"compact\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"command\": \"idle all\""), std::string::npos) << r.out;
  const CliResult t = run_cli({"load", dir_ / "mixed.img", "--then", "compact"});
  EXPECT_NE(t.out.find("then        compact: "), std::string::npos) << t.out;
}

TEST_F(LoadTest, BackingDevAndWriteback) {
  Random rng(9);
  std::string img;
  for (int i = 0; i < 32; i++) img += random_block(rng);
  write_file(dir_ / "backing", std::string(1 << 20, '\0'));
  const CliResult r =
      run_cli({"load", image_of("r.img", img), "--json", "-o", "backing_dev=" + (dir_ / "backing"),
               "--then", "writeback type=huge"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "bd_count"), 32u);
  EXPECT_EQ(json_u64(r.out, "bd_writes"), 32u);
  EXPECT_EQ(json_u64(r.out, "huge_pages"), 0u);
  EXPECT_EQ(json_u64(r.out, "huge_pages_since"), 32u);
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 32u * 4096);  // written-back slots still count
  const CliResult t = run_cli({"load", dir_ / "r.img", "-o", "backing_dev=" + (dir_ / "backing"),
                               "--then", "writeback type=huge"});
  EXPECT_NE(t.out.find("\nbd_stat     "), std::string::npos) << t.out;
}

TEST_F(LoadTest, RecompressionParametersBeforeInit) {
  // recomp_algorithm must precede the algorithm_params that name its algorithm: -o order.
  const CliResult r =
      run_cli({"load", mixed_image(), "--json", "--algo", "lz4", "-o",
               "recomp_algorithm=algo=zstd priority=1", "-o", "algorithm_params=algo=zstd level=9",
               "--then", "recompress type=huge"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"command\": \"recompress type=huge\""), std::string::npos) << r.out;
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 25u * 4096);
}

TEST_F(LoadTest, ThenErrors) {
  const std::string img = mixed_image();
  CliResult r = run_cli({"load", img, "--then", "bogus"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("bogus: no such attribute"), std::string::npos) << r.err;
  r = run_cli({"load", img, "--then", "idle sometimes"});  // the store's own message
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("idle"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(LoadTest, SizeHandling) {
  const std::string img = mixed_image();
  CliResult r = run_cli({"load", img, "--json", "--size", "1M"});
  ASSERT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "disksize"), 1u << 20);
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 25u * 4096);
  r = run_cli({"load", img, "--size", "64K"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("smaller than the image"), std::string::npos) << r.err;
  r = run_cli({"load", img, "--size", "big"});
  EXPECT_EQ(r.status, kExitUsage);
  r = run_cli({"load", image_of("empty.img", "")});
  EXPECT_EQ(r.status, kExitUsage);
  r = run_cli({"load", image_of("empty.img", ""), "--size", "64K", "--json"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(json_u64(r.out, "orig_data_size"), 0u);
}

// What cannot be an image: each gets an error naming the problem, never a confusing one
// from the store (a directory's lseek size once gave "cannot allocate the slot table").
TEST_F(LoadTest, ImagesThatAreNotFiles) {
  ASSERT_EQ(::mkdir((dir_ / "adir").c_str(), 0700), 0);
  CliResult r = run_cli({"load", dir_ / "adir"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(r.err, "uzram load: " + (dir_ / "adir") +
                       " is a directory: IMAGE must be a regular file or a block device"
                       " (its size is the disk's)\n");
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  r = run_cli({"load", dir_ / "fifo"});  // no writer: must not block
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("is a FIFO (pipe)"), std::string::npos) << r.err;
  for (const char* dev : {"/dev/zero", "/dev/null"}) {
    r = run_cli({"load", dev});
    EXPECT_EQ(r.status, kExitFailed) << dev;
    EXPECT_NE(r.err.find(std::string(dev) + " is a character device"), std::string::npos) << r.err;
  }
  // Opens, but cannot be read: the error says so before any store is made.
  r = run_cli({"load", "/proc/self/mem", "--size", "64K"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("/proc/self/mem"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("cannot read: Input/output error"), std::string::npos) << r.err;
  // Larger than anything addressable: the store's reason, not a mapping failure.
  r = run_cli({"load", mixed_image(), "--size", "2048P"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("more than uzram can address"), std::string::npos) << r.err;
  // Unreadable for lack of permission: as another user (root reads everything).
  if (::geteuid() != 0) return;
  const std::string secret = image_of("secret.img", std::string(8192, 's'));
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // child: become nobody, run the command, report through the exit status
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    const CliResult c = run_cli({"load", secret});
    const bool ok = c.status == kExitFailed &&
                    c.err.find("cannot open: Permission denied") != std::string::npos;
    ::_exit(ok ? 0 : 101);
  }
  int ws = 0;
  ASSERT_EQ(::waitpid(pid, &ws, 0), pid);
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "status " << ws;
}

TEST_F(LoadTest, MissingImage) {
  const CliResult r = run_cli({"load", dir_ / "nope.img"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  EXPECT_EQ(run_cli({"load"}).status, kExitUsage);
}

}  // namespace
}  // namespace uzram::testing
