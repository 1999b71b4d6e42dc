// uzram/result.h - Result<T>: a value or a std::error_code (an expected-like type; the
// library never throws). Errc is uzram's error enum, convertible to std::error_code and
// comparable with std::errc (e.g. `r.error() == std::errc::not_enough_memory`).
#ifndef UZRAM_RESULT_H_
#define UZRAM_RESULT_H_

#include <cstdlib>
#include <system_error>
#include <type_traits>
#include <utility>

namespace uzram {

enum class Errc {
  ok = 0,
  invalid_argument = 1,  // size 0, bad option, frame not in use, ...
  too_large = 2,         // object larger than 4096 bytes (kernel: -ENOSPC)
  no_memory = 3,         // arena exhausted or mmap failed (kernel: -ENOMEM)
  busy = 4,              // a try-lock failed (zspage read-locked, frame isolated)
  limit_reached = 5,     // a configured limit was hit
  not_supported = 6,
  codec_failed = 7,      // compression/decompression failed or input corrupt
  unknown_codec = 8,     // algorithm name not known
  bad_level = 9,         // compression level out of the algorithm's range
  bad_dictionary = 10,   // dictionary unreadable, refused, or not supported
  out_of_range = 11,     // block index or byte range beyond the device
  io_error = 12,         // backing device I/O failed
  not_initialized = 13,  // device has no disksize yet
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Result<T>: holds either a T or a non-zero error_code. Accessing the value of an error
// result aborts (misuse), it never throws.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : value_(std::move(value)), ok_(true) {}
  Result(std::error_code ec) noexcept : error_(ec), ok_(false) {}  // NOLINT: implicit
  Result(Errc e) noexcept : error_(make_error_code(e)), ok_(false) {}  // NOLINT: implicit

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const T& value() const& noexcept { check(); return value_; }
  T& value() & noexcept { check(); return value_; }
  T&& value() && noexcept { check(); return std::move(value_); }
  const T& operator*() const& noexcept { return value(); }
  T& operator*() & noexcept { return value(); }
  const T* operator->() const noexcept { return &value(); }
  T* operator->() noexcept { return &value(); }
  T value_or(T other) const noexcept { return ok_ ? value_ : other; }
  std::error_code error() const noexcept { return ok_ ? std::error_code{} : error_; }

 private:
  void check() const noexcept {
    if (!ok_) std::abort();  // value() of an error result: a caller bug
  }
  T value_{};
  std::error_code error_{};
  bool ok_;
};

// Result<void>: success or an error_code.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(std::error_code ec) noexcept : error_(ec) {}  // NOLINT: implicit
  Result(Errc e) noexcept : error_(make_error_code(e)) {}  // NOLINT: implicit
  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return !error_; }
  std::error_code error() const noexcept { return error_; }

 private:
  std::error_code error_{};
};

}  // namespace uzram

namespace std {
template <>
struct is_error_code_enum<uzram::Errc> : true_type {};
}  // namespace std

#endif  // UZRAM_RESULT_H_
