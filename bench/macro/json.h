// bench/macro/json.h - just enough JSON for uzram-bench: a writer that builds one object
// (the child processes' results and the --json output) and a reader for what the children
// print. Not a general JSON library: numbers are doubles, strings are ASCII.
#ifndef UZRAM_BENCH_MACRO_JSON_H_
#define UZRAM_BENCH_MACRO_JSON_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace uzram::bench {

// A parsed value. Objects keep their keys sorted (std::map); the bench never relies on
// key order.
struct JsonValue {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<JsonValue> arr;
  std::map<std::string, JsonValue> obj;

  // Member lookup: a null value when absent or when this is not an object.
  const JsonValue& operator[](const std::string& key) const;
  const JsonValue& operator[](std::size_t i) const;
  double number_or(double fallback) const { return type == Type::number ? num : fallback; }
  bool is_null() const { return type == Type::null; }
};

// Parses `text`; on error returns false and sets *error to a short reason.
bool parse_json(const std::string& text, JsonValue* out, std::string* error);

// Streaming writer: key/value calls inside begin_object/end_object, value calls inside
// begin_array/end_array. Commas are inserted automatically.
class JsonWriter {
 public:
  JsonWriter& begin_object(const char* key = nullptr);
  JsonWriter& end_object();
  JsonWriter& begin_array(const char* key = nullptr);
  JsonWriter& end_array();
  JsonWriter& num(const char* key, double v);
  JsonWriter& count(const char* key, std::uint64_t v);  // exact integer
  JsonWriter& str(const char* key, const std::string& v);
  JsonWriter& boolean(const char* key, bool v);
  // Pastes already-serialized JSON (a child's output) as a value.
  JsonWriter& raw(const char* key, const std::string& json);
  // Array elements.
  JsonWriter& num(double v) { return num(nullptr, v); }
  const std::string& text() const { return out_; }

 private:
  void key(const char* k);
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
};

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_JSON_H_
