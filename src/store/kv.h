// store/kv.h - the kernel's `key=value key=value` argument grammar (algorithm_params,
// recomp_algorithm, writeback, recompress), plus small number parsers (layer 3).
#ifndef UZRAM_STORE_KV_H_
#define UZRAM_STORE_KV_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uzram {

// Splits on whitespace into (key, value) pairs; a bare word has an empty value and
// has_value false. Quotes are not special (the kernel has none).
struct KeyValue {
  std::string_view key;
  std::string_view value;
  bool has_value;
};
std::vector<KeyValue> split_kv(std::string_view text) noexcept;

// Strict decimal parsers (a trailing newline is allowed, as in sysfs writes).
bool parse_u64(std::string_view text, std::uint64_t* out) noexcept;
bool parse_int(std::string_view text, int* out) noexcept;
std::string_view trim(std::string_view text) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_KV_H_
