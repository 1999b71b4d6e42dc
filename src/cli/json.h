// cli/json.h - JsonWriter: a small streaming JSON writer for `uzram load --json` and
// `uzram status --json` (layer 4b, cli). Pretty-printed, two-space indentation; keys in
// the order written. Misuse (a value without a key inside an object) is a caller bug and
// is not diagnosed.
#ifndef UZRAM_CLI_JSON_H_
#define UZRAM_CLI_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace uzram::cli {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(std::uint64_t number);
  JsonWriter& value(unsigned number) { return value(std::uint64_t{number}); }
  JsonWriter& value(double number, int decimals);
  JsonWriter& value(bool flag);
  JsonWriter& null();
  // key(name).value(v) in one call.
  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }
  // The document so far, with a final newline once the outermost value is closed.
  [[nodiscard]] const std::string& str() const { return out_; }

 private:
  void before_value();
  void open(char c);
  void close(char c);
  std::string out_;
  std::vector<int> counts_;  // items written at each open level
  bool after_key_ = false;
};

// `text` as a JSON string literal, quotes included.
[[nodiscard]] std::string json_quote(std::string_view text);

}  // namespace uzram::cli

#endif  // UZRAM_CLI_JSON_H_
