// bench/macro/json.h - uzram-bench's JSON: nlohmann::ordered_json (Debian:
// nlohmann-json3-dev) for the children's results and the --json output, plus JsonView, a
// read-only accessor for what a child printed. nlohmann's own const operator[] is undefined
// behaviour on a missing key, and its get<>() throws on a type mismatch; a child that
// crashed half-way or an older binary must give a clear "missing" instead, so the report
// reads results only through JsonView.
#ifndef UZRAM_BENCH_MACRO_JSON_H_
#define UZRAM_BENCH_MACRO_JSON_H_

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace uzram::bench {

using Json = nlohmann::ordered_json;

// A view of one value of a Json document (which must outlive it). Lookups never throw and
// never insert: a missing member or element, or a lookup in a value of another type, gives
// a null view.
class JsonView {
 public:
  JsonView(const Json& j) : j_(&j) {}  // NOLINT(google-explicit-constructor): a view

  JsonView operator[](std::string_view key) const;
  JsonView operator[](std::size_t i) const;
  // The number (integer or floating point), or `fallback` when this is not a number.
  [[nodiscard]] double number_or(double fallback) const;
  // The string, or "" when this is not a string.
  [[nodiscard]] std::string string_or_empty() const;
  [[nodiscard]] bool is_null() const { return j_->is_null(); }
  // Array elements or object members; 0 for anything else.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] const Json& json() const { return *j_; }

 private:
  const Json* j_;
};

// Parses `text` into *out; false when it is not one JSON value. Never throws.
bool parse_json(const std::string& text, Json* out);

// `doc` on one line; text that is not UTF-8 has each bad byte replaced by U+FFFD.
std::string json_text(const Json& doc);

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_JSON_H_
