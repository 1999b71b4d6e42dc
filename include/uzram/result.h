// uzram/result.h - Result<T>: a value or a std::error_code (an expected-like type; the
// library never throws). Errc is uzram's error enum, convertible to std::error_code and
// comparable with std::errc (e.g. `r.error() == std::errc::not_enough_memory`).
#ifndef UZRAM_RESULT_H_
#define UZRAM_RESULT_H_

#include <optional>
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

namespace detail {
// The two misuses of Result<T>; both print a message and abort, in every build type.
[[noreturn]] void result_error_is_success() noexcept;
[[noreturn]] void result_value_of_error(const std::error_code& ec) noexcept;
}  // namespace detail

#if defined(__has_attribute)
#if __has_attribute(diagnose_if)
#define UZRAM_RESULT_DIAGNOSE_OK_(e) \
  __attribute__((diagnose_if((e) == Errc::ok, "Result<T>(Errc::ok) is not an error", "error")))
#endif
#endif
#ifndef UZRAM_RESULT_DIAGNOSE_OK_
#define UZRAM_RESULT_DIAGNOSE_OK_(e)
#endif

// Result<T>: holds either a T or an error_code that is an error (non-zero). T need not be
// default-constructible; it may be move-only. Misuse aborts with a message in every build
// type, it never throws:
//   - constructing an error result from a success code (Errc::ok, a zero std::error_code):
//     a Result<T> is a value or an error, never an "error" that is falsy. With clang the
//     literal Errc::ok is also refused at compile time.
//   - value() (or * / ->) of an error result.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported: use a pointer");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::error_code> &&
                    !std::is_same_v<std::remove_cv_t<T>, Errc>,
                "a Result whose value is an error code is ambiguous");

 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : value_(std::move(value)) {}
  Result(std::error_code ec) noexcept : error_(ec) {  // NOLINT: implicit
    if (!ec) detail::result_error_is_success();
  }
  Result(Errc e) noexcept UZRAM_RESULT_DIAGNOSE_OK_(e)  // NOLINT: implicit
      : Result(make_error_code(e)) {}

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return value_.has_value(); }
  const T& value() const& noexcept {
    check();
    return *value_;
  }
  T& value() & noexcept {
    check();
    return *value_;
  }
  T&& value() && noexcept {
    check();
    return std::move(*value_);
  }
  const T& operator*() const& noexcept { return value(); }
  T& operator*() & noexcept { return value(); }
  const T* operator->() const noexcept { return &value(); }
  T* operator->() noexcept { return &value(); }
  T value_or(T other) const& noexcept(std::is_nothrow_copy_constructible_v<T>) {
    return value_ ? *value_ : std::move(other);
  }
  T value_or(T other) && noexcept(std::is_nothrow_move_constructible_v<T>) {
    return value_ ? std::move(*value_) : std::move(other);
  }
  // The error; a zero error_code for a value.
  std::error_code error() const noexcept { return error_; }

 private:
  void check() const noexcept {
    if (!value_) detail::result_value_of_error(error_);  // a caller bug
  }
  std::optional<T> value_;  // engaged exactly when this holds a value
  std::error_code error_;   // non-zero exactly when it does not
};

#undef UZRAM_RESULT_DIAGNOSE_OK_

// Result<void>: success or an error_code. Here a zero code (Errc::ok) is success, the same
// state as Result<void>{}: there is no value to be missing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(std::error_code ec) noexcept : error_(ec) {}      // NOLINT: implicit
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
