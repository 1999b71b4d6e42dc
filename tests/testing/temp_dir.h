// testing/temp_dir.h - TempDir: a private temporary directory, removed with its contents on
// destruction (tests that bind sockets or write files); write_file().
#ifndef UZRAM_TESTS_TESTING_TEMP_DIR_H_
#define UZRAM_TESTS_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace uzram::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/uzram-cli-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace uzram::testing

#endif  // UZRAM_TESTS_TESTING_TEMP_DIR_H_
