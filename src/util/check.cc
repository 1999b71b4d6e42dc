// util/check.cc - fatal_error and the Errc error category.
#include "util/check.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "uzram/result.h"

namespace uzram {

void fatal_error(const char* file, int line, const char* expr, const char* fmt, ...) {
  std::fprintf(stderr, "uzram: fatal: %s:%d: check '%s' failed: ", file, line, expr);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

namespace detail {

void result_error_is_success() noexcept {
  std::fputs(
      "uzram: fatal: Result<T> constructed as an error from a success code (Errc::ok or a "
      "zero std::error_code); return a value or a real error\n",
      stderr);
  std::fflush(stderr);
  std::abort();
}

void result_value_of_error(const std::error_code& ec) noexcept {
  std::fprintf(stderr,
               "uzram: fatal: Result<T>::value() of an error result (%s:%d); check "
               "has_value() first\n",
               ec.category().name(), ec.value());
  std::fflush(stderr);
  std::abort();
}

}  // namespace detail

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "uzram"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::ok: return "success";
      case Errc::invalid_argument: return "invalid argument";
      case Errc::too_large: return "object too large (more than 4096 bytes)";
      case Errc::no_memory: return "out of memory";
      case Errc::busy: return "resource busy";
      case Errc::limit_reached: return "limit reached";
      case Errc::not_supported: return "not supported";
      case Errc::codec_failed: return "compression or decompression failed";
      case Errc::unknown_codec: return "unknown compression algorithm";
      case Errc::bad_level: return "compression level out of range";
      case Errc::bad_dictionary: return "bad compression dictionary";
      case Errc::out_of_range: return "out of range";
      case Errc::io_error: return "I/O error";
      case Errc::not_initialized: return "device not initialized";
    }
    return "unknown uzram error";
  }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<Errc>(ev)) {
      case Errc::invalid_argument: return std::errc::invalid_argument;
      case Errc::too_large: return std::errc::no_space_on_device;
      case Errc::no_memory: return std::errc::not_enough_memory;
      case Errc::busy: return std::errc::device_or_resource_busy;
      case Errc::limit_reached: return std::errc::no_space_on_device;
      case Errc::not_supported: return std::errc::operation_not_supported;
      case Errc::codec_failed: return std::errc::io_error;
      case Errc::unknown_codec: return std::errc::invalid_argument;
      case Errc::bad_level: return std::errc::invalid_argument;
      case Errc::bad_dictionary: return std::errc::invalid_argument;
      case Errc::out_of_range: return std::errc::result_out_of_range;
      case Errc::io_error: return std::errc::io_error;
      case Errc::not_initialized: return std::errc::invalid_argument;
      default: return {ev, *this};
    }
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace uzram
