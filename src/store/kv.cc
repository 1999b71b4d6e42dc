// store/kv.cc - key=value argument parsing.
#include "store/kv.h"

#include <cctype>
#include <charconv>

namespace uzram {

std::string_view trim(std::string_view t) noexcept {
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  return t;
}

std::vector<KeyValue> split_kv(std::string_view text) noexcept {
  std::vector<KeyValue> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) i++;
    const std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) i++;
    if (start == i) break;
    const std::string_view tok = text.substr(start, i - start);
    const std::size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      out.push_back({tok, {}, false});
    } else {
      out.push_back({tok.substr(0, eq), tok.substr(eq + 1), true});
    }
  }
  return out;
}

bool parse_u64(std::string_view t, std::uint64_t* out) noexcept {
  t = trim(t);
  if (t.empty()) return false;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
  return ec == std::errc{} && p == t.data() + t.size();
}

bool parse_int(std::string_view t, int* out) noexcept {
  t = trim(t);
  if (t.empty()) return false;
  if (t.front() == '+') t.remove_prefix(1);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
  return ec == std::errc{} && p == t.data() + t.size();
}

}  // namespace uzram
