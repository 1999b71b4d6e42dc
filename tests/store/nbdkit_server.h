// store/nbdkit_server.h - NbdkitServer: an `nbdkit` process serving one export on a Unix
// socket, for the remote backing tier's tests: started, killed (SIGKILL, like a crash),
// stopped (SIGSTOP, a hang), resumed and restarted on the same socket. Tests skip when
// nbdkit is not installed (Debian: nbdkit).
#ifndef UZRAM_TESTS_STORE_NBDKIT_SERVER_H_
#define UZRAM_TESTS_STORE_NBDKIT_SERVER_H_

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "testing/temp_dir.h"

namespace uzram::testing {

inline bool have_nbdkit() { return std::system("nbdkit --version >/dev/null 2>&1") == 0; }

class NbdkitServer {
 public:
  // args: what follows the common options, e.g. {"memory", "64M"}.
  explicit NbdkitServer(std::vector<std::string> args) : args_(std::move(args)) {}
  ~NbdkitServer() { kill_now(); }
  NbdkitServer(const NbdkitServer&) = delete;
  NbdkitServer& operator=(const NbdkitServer&) = delete;

  const std::string& socket() const { return sock_; }
  std::string uri(const std::string& scheme = "nbd+unix") const {
    return scheme + ":///?socket=" + sock_;
  }

  // Starts nbdkit and waits until it serves (its pid file appears). False on failure.
  bool start(std::vector<std::string> pre = {}) {
    ::unlink(pid_.c_str());
    ::unlink(sock_.c_str());
    std::vector<std::string> argv = {"nbdkit", "-f", "--exit-with-parent", "-U", sock_, "-P", pid_};
    argv.insert(argv.end(), pre.begin(), pre.end());
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_t p = ::fork();
    if (p < 0) return false;
    if (p == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execvp("nbdkit", a.data());
      ::_exit(127);
    }
    child_ = p;
    for (int i = 0; i < 1000; i++) {  // 10 s on a busy machine
      struct stat st;
      if (::stat(pid_.c_str(), &st) == 0 && st.st_size > 0) return true;
      int status;
      if (::waitpid(child_, &status, WNOHANG) == child_) {
        child_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  void kill_now() {
    if (child_ <= 0) return;
    ::kill(child_, SIGCONT);
    ::kill(child_, SIGKILL);
    int status;
    ::waitpid(child_, &status, 0);
    child_ = -1;
  }
  // SIGSTOP, and waits until every thread is stopped (the signal is asynchronous).
  void pause() {
    ::kill(child_, SIGSTOP);
    const std::string tasks = "/proc/" + std::to_string(child_) + "/task";
    for (int i = 0; i < 1000; i++) {
      bool all = true;
      std::error_code ec;
      for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
        std::ifstream f(t.path() / "stat");
        std::string line;
        std::getline(f, line);
        const auto p = line.rfind(')');
        all &= p != std::string::npos && p + 2 < line.size() && line[p + 2] == 'T';
      }
      if (all && !ec) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void resume() { ::kill(child_, SIGCONT); }

 private:
  std::vector<std::string> args_;
  TempDir dir_;
  std::string sock_ = dir_ / "nbd.sock";
  std::string pid_ = dir_ / "nbdkit.pid";
  pid_t child_ = -1;
};

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_STORE_NBDKIT_SERVER_H_
