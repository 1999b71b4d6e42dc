// store/codec.cc - make_codec(): validates a CodecSpec (name, level range, dictionary
// support) and dispatches to one family's factory; the dictionary loader; codec_names().
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "store/codec.h"
#include "store/codec_internal.h"
#include "store/file_checks.h"
#include "sync/lock_order.h"
#include "util/errno_text.h"

namespace uzram {
namespace {

// The built-in algorithms, in the kernel's listing order.
enum class Algo { lzo_rle, lzo, lz4, lz4hc, zstd, deflate };

struct AlgoInfo {
  std::string_view name;
  Algo algo;
  bool has_dictionary;
};

constexpr AlgoInfo kAlgos[] = {
    {"lzo-rle", Algo::lzo_rle, false}, {"lzo", Algo::lzo, false},
    {"lz4", Algo::lz4, true},          {"lz4hc", Algo::lz4hc, true},
    {"zstd", Algo::zstd, true},        {"deflate", Algo::deflate, false},
};

const AlgoInfo* find_algo(std::string_view name) noexcept {
  for (const auto& a : kAlgos) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

// Level check, per algorithm. An unset level always passes (the library's default).
bool level_ok(Algo algo, int level) noexcept {
  switch (algo) {
    case Algo::lzo_rle:
    case Algo::lzo: return false;  // no levels
    case Algo::lz4: return level >= 1 && level <= codec_internal::kLz4MaxAcceleration;
    case Algo::lz4hc:
      return level >= codec_internal::kLz4hcMinLevel && level <= codec_internal::kLz4hcMaxLevel;
    case Algo::zstd:
      return level >= codec_internal::zstd_min_level() && level <= codec_internal::zstd_max_level();
    case Algo::deflate:
      return level >= codec_internal::kDeflateMinLevel && level <= codec_internal::kDeflateMaxLevel;
  }
  return false;
}

bool winbits_ok(int winbits) noexcept {
  return winbits == 0 || (winbits >= -15 && winbits <= -8) || (winbits >= 8 && winbits <= 15);
}

}  // namespace

Result<std::shared_ptr<const std::string>> read_dictionary(const std::string& path,
                                                           std::string* msg) noexcept {
  const auto bad = [&](std::string why) -> Result<std::shared_ptr<const std::string>> {
    if (msg) *msg = "dict=" + path + ": " + std::move(why);
    return Errc::bad_dictionary;
  };
  if (path.empty()) return bad("empty path");
  if (path.find('\0') != std::string::npos) return bad("path contains a NUL byte");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return bad(errno_text(errno));
  if (!S_ISREG(st.st_mode)) {
    return bad(std::string("is ") + file_type_name(st.st_mode) + ", not a regular file");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return bad(errno_text(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0) return bad(errno_text(errno));
  if (!S_ISREG(st.st_mode)) {
    return bad(std::string("is ") + file_type_name(st.st_mode) + ", not a regular file");
  }
  if (const char* fs = pseudo_fs_name(fd)) {
    return bad(std::string("is on ") + fs + ", a pseudo file system");
  }
  if (st.st_size <= 0) return bad("is empty");
  if (static_cast<std::uint64_t>(st.st_size) > codec_internal::kMaxDictionaryBytes) {
    return bad("is " + std::to_string(st.st_size) + " bytes, more than the " +
               std::to_string(codec_internal::kMaxDictionaryBytes >> 20) +
               " MiB a dictionary may have");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  std::shared_ptr<std::string> bytes;
  try {
    bytes = std::make_shared<std::string>(size, '\0');
  } catch (...) {
    return Errc::no_memory;
  }
  std::size_t got = 0;
  while (got < size) {
    const ssize_t r = ::read(fd, bytes->data() + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return bad(errno_text(errno));
    if (r == 0) break;  // the file shrank under us
    got += static_cast<std::size_t>(r);
  }
  if (got != size) return bad("changed size while being read");
  return std::shared_ptr<const std::string>(std::move(bytes));
}

namespace codec_internal {

Result<DictBuffer> load_dictionary(const std::string& path) noexcept {
  auto bytes = read_dictionary(path);
  if (!bytes) return bytes.error();
  return copy_dictionary(**bytes);
}

Result<DictBuffer> copy_dictionary(const std::string& bytes) noexcept {
  DictBuffer dict;
  dict.data.reset(new (std::nothrow) unsigned char[bytes.size()]);
  if (!dict.data) return Errc::no_memory;
  std::memcpy(dict.data.get(), bytes.data(), bytes.size());
  dict.size = bytes.size();
  return dict;
}

}  // namespace codec_internal

Result<std::unique_ptr<Codec>> make_codec(const CodecSpec& spec) noexcept {
  might_sleep();
  const AlgoInfo* info = find_algo(spec.name);
  if (info == nullptr) return Errc::unknown_codec;
  if (spec.has_level && !level_ok(info->algo, spec.level)) return Errc::bad_level;
  const bool wants_dict = !spec.dict_path.empty() || spec.dict;
  if (wants_dict && !info->has_dictionary) return Errc::bad_dictionary;
  // deflate.winbits is a deflate parameter; the kernel ignores it for other algorithms.
  if (info->algo == Algo::deflate && !winbits_ok(spec.deflate_winbits)) {
    return Errc::invalid_argument;
  }
  codec_internal::DictBuffer dict;
  if (wants_dict) {
    auto loaded = spec.dict ? codec_internal::copy_dictionary(*spec.dict)
                            : codec_internal::load_dictionary(spec.dict_path);
    if (!loaded) return loaded.error();
    dict = std::move(*loaded);
  }
  switch (info->algo) {
    case Algo::lzo_rle: return codec_internal::make_lzo_rle();
    case Algo::lzo: return codec_internal::make_lzo();
    case Algo::lz4: return codec_internal::make_lz4(spec, std::move(dict));
    case Algo::lz4hc: return codec_internal::make_lz4hc(spec, std::move(dict));
    case Algo::zstd: return codec_internal::make_zstd(spec, std::move(dict));
    case Algo::deflate: return codec_internal::make_deflate(spec);
  }
  return Errc::unknown_codec;
}

std::vector<std::string> codec_names() noexcept {
  std::vector<std::string> names;
  names.reserve(std::size(kAlgos));
  for (const auto& a : kAlgos) names.emplace_back(a.name);
  return names;
}

bool codec_known(std::string_view name) noexcept { return find_algo(name) != nullptr; }

}  // namespace uzram
