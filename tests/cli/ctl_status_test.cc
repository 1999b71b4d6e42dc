// cli/ctl_status_test.cc - `uzram ctl` and `uzram status` against ControlServers started in
// this process, on sockets in a temporary XDG_RUNTIME_DIR.
#include <memory>

#include "cli_testing.h"
#include "control/control.h"
#include "uzram/store.h"

namespace uzram::testing {
namespace {

using cli::kExitFailed;
using cli::kExitOk;
using cli::kExitUnreachable;
using cli::kExitUsage;

class CtlStatusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = std::getenv("XDG_RUNTIME_DIR");
    had_xdg_ = old != nullptr;
    if (old) old_xdg_ = old;
    ::setenv("XDG_RUNTIME_DIR", dir_.path().c_str(), 1);
  }
  void TearDown() override {
    servers_.clear();
    if (had_xdg_) {
      ::setenv("XDG_RUNTIME_DIR", old_xdg_.c_str(), 1);
    } else {
      ::unsetenv("XDG_RUNTIME_DIR");
    }
  }
  // A store holding `same` same-filled and `huge` random blocks: its table row does not
  // depend on the codec (huge objects take one frame each).
  Store* add_store(const std::string& name, unsigned same, unsigned huge, bool init = true) {
    auto s = Store::create(name);
    EXPECT_TRUE(s);
    Store* p = s->get();
    stores_.push_back(std::move(s).value());
    if (!init) return p;
    EXPECT_TRUE(p->write_attr("disksize", "4M"));
    Random rng(5);
    std::uint64_t i = 0;
    for (unsigned k = 0; k < same; k++, i++) EXPECT_TRUE(p->write(i, zero_block().data()));
    for (unsigned k = 0; k < huge; k++, i++) EXPECT_TRUE(p->write(i, random_block(rng).data()));
    return p;
  }
  std::string serve(const std::string& sock, std::vector<Store*> stores) {
    const std::string path = dir_ / ("uzram/" + sock);
    std::string msg;
    auto s = ControlServer::start(path, std::move(stores), &msg);
    EXPECT_TRUE(s) << msg;
    servers_.push_back(std::move(s).value());
    return path;
  }
  TempDir dir_;
  std::vector<std::unique_ptr<Store>> stores_;
  std::vector<std::unique_ptr<ControlServer>> servers_;
  bool had_xdg_ = false;
  std::string old_xdg_;
};

TEST_F(CtlStatusTest, CtlReadsExactlyWhatTheAttributePrints) {
  Store* s = add_store("zram0", 3, 2);
  const std::string path = serve("control.sock", {s});
  for (const char* attr :
       {"mm_stat", "comp_algorithm", "disksize", "io_stat", "debug_stat", "initstate"}) {
    const CliResult r = run_cli({"ctl", "--control", path, attr});
    EXPECT_EQ(r.status, kExitOk) << r.err;
    EXPECT_EQ(r.out, *s->read_attr(attr)) << attr;
  }
  const CliResult d = run_cli({"ctl", "mm_stat"});  // the default socket
  EXPECT_EQ(d.status, kExitOk) << d.err;
  EXPECT_EQ(d.out, *s->read_attr("mm_stat"));
}

TEST_F(CtlStatusTest, CtlWrites) {
  Store* s = add_store("zram0", 0, 0);
  Store* t = add_store("zram1", 0, 0, false);
  serve("control.sock", {s, t});
  CliResult r = run_cli({"ctl", "mem_limit", "64M"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(s->mm_stat().mem_limit, 64u << 20);
  r = run_cli({"ctl", "compact", "1"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  r = run_cli({"ctl", "compact"});  // a trigger given no value means 1
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(r.out, "");
  r = run_cli({"ctl", "-d", "zram1", "compact"});  // the store's refusal: not initialised
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("compact: device not initialised"), std::string::npos) << r.err;
  r = run_cli({"ctl", "-d", "zram1", "comp_algorithm", "lz4"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  r = run_cli({"ctl", "-d", "zram1", "algorithm_params", "algo=lz4", "level=1"});  // words joined
  EXPECT_EQ(r.status, kExitOk) << r.err;
  r = run_cli({"ctl", "-d", "zram1", "disksize", "8M"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(t->disksize(), 8u << 20);
}

TEST_F(CtlStatusTest, CtlErrors) {
  Store* s = add_store("zram0", 0, 0);
  serve("control.sock", {s});
  CliResult r = run_cli({"ctl", "nosuch"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(r.err, "uzram ctl: nosuch: no such attribute\n");
  r = run_cli({"ctl", "disksize", "8M"});
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(r.err, "uzram ctl: disksize: device already initialised (reset it first)\n");
  r = run_cli({"ctl", "reset"});  // no value: refused, the store is kept (the kernel's grammar)
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_NE(r.err.find("uzram ctl: reset: give the value, e.g. 'reset 1'"), std::string::npos)
      << r.err;
  EXPECT_TRUE(s->initialized());
  r = run_cli({"ctl", "idle"});  // write-only, not a trigger: the store's grammar error
  EXPECT_EQ(r.status, kExitFailed);
  EXPECT_EQ(r.err, "uzram ctl: idle: expects 'all' or an age in seconds\n");
  r = run_cli({"ctl", "-d", "zram7", "mm_stat"});
  EXPECT_EQ(r.status, kExitFailed);
  r = run_cli({"ctl", "--control", dir_ / "none.sock", "mm_stat"});
  EXPECT_EQ(r.status, kExitUnreachable);
  EXPECT_NE(r.err.find("cannot connect to"), std::string::npos) << r.err;
  r = run_cli({"ctl"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("Try 'uzram --help' for more information."), std::string::npos);
}

TEST_F(CtlStatusTest, StatusTableOfEverySocket) {
  Store* a = add_store("zram0", 3, 2);
  Store* b = add_store("zram1", 0, 5);
  Store* c = add_store("zram2", 0, 0, false);  // uninitialised: not listed
  serve("a.sock", {a});
  serve("b.sock", {b, c});
  CliResult r =
      run_cli({"status", "-o", "NAME,DISKSIZE,DATA,COMPR,TOTAL,ZERO-PAGES,HUGE-PAGES,COMP-RATIO"});
  EXPECT_EQ(r.status, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "NAME  DISKSIZE DATA COMPR TOTAL ZERO-PAGES HUGE-PAGES COMP-RATIO\n"
            "zram0       4M  20K    8K    8K          3          2       2.50\n"
            "zram1       4M  20K   20K   20K          0          5       1.00\n");
  r = run_cli({"status", "-b", "-n", "--raw", "-o", "name,data,total"});
  EXPECT_EQ(r.out, "zram0 20480 8192\nzram1 20480 20480\n");
  r = run_cli({"status", "--json", "-o", "NAME,ZSPAGES"});
  EXPECT_EQ(r.out,
            "{\n  \"stores\": [\n    {\n      \"name\": \"zram0\",\n      \"zspages\": 2\n    },\n"
            "    {\n      \"name\": \"zram1\",\n      \"zspages\": 5\n    }\n  ]\n}\n");
  r = run_cli({"status"});  // defaults; STREAMS is the machine's CPU count
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "NAME  ALGORITHM UNIT DISKSIZE DATA COMPR TOTAL STREAMS");
  r = run_cli({"status", "--control", servers_[1]->path(), "-n", "-o", "NAME"});
  EXPECT_EQ(r.out, "zram1\n");
}

TEST_F(CtlStatusTest, StatusWithNothingReachablePrintsNothing) {
  CliResult r = run_cli({"status"});  // no directory at all
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  Store* c = add_store("zram0", 0, 0, false);
  serve("idle.sock", {c});
  r = run_cli({"status"});  // only an uninitialised store
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_EQ(r.out, "");
  servers_.clear();  // the socket file goes away with the server
  write_file(dir_ / "uzram/notasocket.sock", "x");
  r = run_cli({"status"});
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_EQ(r.out, "");
}

TEST_F(CtlStatusTest, StatusUsageAndUnreachable) {
  Store* a = add_store("zram0", 1, 1);
  serve("a.sock", {a});
  CliResult r = run_cli({"status", "-o", "NAME,BOGUS"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_EQ(r.err,
            "uzram: status: unknown column: BOGUS\nTry 'uzram --help' for more information.\n");
  r = run_cli({"status", "--raw", "--json"});
  EXPECT_EQ(r.status, kExitUsage);
  EXPECT_NE(r.err.find("Try 'uzram --help'"), std::string::npos);
  r = run_cli({"status", "-o", "NAME", "--output-all"});
  EXPECT_EQ(r.status, kExitUsage);
  r = run_cli({"status", "--control", dir_ / "gone.sock", "--control", servers_[0]->path(), "-n",
               "-o", "NAME"});
  EXPECT_EQ(r.status, kExitUnreachable);
  EXPECT_EQ(r.out, "zram0\n");  // the reachable ones are still listed
  EXPECT_NE(r.err.find("gone.sock"), std::string::npos) << r.err;
}

TEST_F(CtlStatusTest, HelpAndVersion) {
  CliResult r = run_cli({"status", "--help"});
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_NE(r.out.find("Available output columns:"), std::string::npos);
  EXPECT_NE(r.out.find("FRAG%"), std::string::npos);
  r = run_cli({"--version"});
  EXPECT_EQ(r.status, kExitOk);
  EXPECT_EQ(r.out.rfind("uzram ", 0), 0u);
  r = run_cli({"frobnicate"});
  EXPECT_EQ(r.status, kExitUsage);
}

}  // namespace
}  // namespace uzram::testing
