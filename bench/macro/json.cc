// bench/macro/json.cc - the minimal JSON reader and writer of json.h.
#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace uzram::bench {

namespace {

const JsonValue kNull{};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  bool parse(JsonValue* out, std::string* error) {
    const bool ok = value(out) && (skip_ws(), pos_ == s_.size() || fail("trailing characters"));
    if (!ok) *error = err_ + " at offset " + std::to_string(pos_);
    return ok;
  }

 private:
  bool fail(const char* why) {
    if (err_.empty()) err_ = why;
    return false;
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) pos_++;
  }
  bool literal(const char* word) {
    std::size_t n = 0;
    while (word[n]) n++;
    if (s_.compare(pos_, n, word) != 0) return fail("bad literal");
    pos_ += n;
    return true;
  }
  bool string(std::string* out) {
    if (s_[pos_] != '"') return fail("expected a string");
    pos_++;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) return fail("bad escape");
        c = s_[pos_++];
        if (c == 'n') c = '\n';
        else if (c == 't') c = '\t';
        else if (c == 'u') {  // only ASCII escapes are produced by the writer
          if (pos_ + 4 > s_.size()) return fail("bad \\u escape");
          c = static_cast<char>(std::strtol(s_.substr(pos_, 4).c_str(), nullptr, 16));
          pos_ += 4;
        }
      }
      out->push_back(c);
    }
    if (pos_ >= s_.size()) return fail("unterminated string");
    pos_++;
    return true;
  }
  bool value(JsonValue* v) {
    skip_ws();
    if (pos_ >= s_.size()) return fail("unexpected end");
    const char c = s_[pos_];
    if (c == '{') {
      v->type = JsonValue::Type::object;
      pos_++;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == '}') return pos_++, true;
      for (;;) {
        skip_ws();
        std::string k;
        if (pos_ >= s_.size() || !string(&k)) return fail("expected a key");
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_++] != ':') return fail("expected ':'");
        if (!value(&v->obj[k])) return false;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') { pos_++; continue; }
        if (pos_ < s_.size() && s_[pos_] == '}') return pos_++, true;
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v->type = JsonValue::Type::array;
      pos_++;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ']') return pos_++, true;
      for (;;) {
        v->arr.emplace_back();
        if (!value(&v->arr.back())) return false;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') { pos_++; continue; }
        if (pos_ < s_.size() && s_[pos_] == ']') return pos_++, true;
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v->type = JsonValue::Type::string;
      return string(&v->str);
    }
    if (c == 't' || c == 'f') {
      v->type = JsonValue::Type::boolean;
      v->b = c == 't';
      return literal(v->b ? "true" : "false");
    }
    if (c == 'n') return literal("null");
    const char* begin = s_.c_str() + pos_;
    char* end = nullptr;
    v->num = std::strtod(begin, &end);
    if (end == begin) return fail("expected a value");
    v->type = JsonValue::Type::number;
    pos_ += static_cast<std::size_t>(end - begin);
    return true;
  }

  const std::string& s_;
  std::size_t pos_ = 0;
  std::string err_;
};

}  // namespace

const JsonValue& JsonValue::operator[](const std::string& key) const {
  if (type != Type::object) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : it->second;
}

const JsonValue& JsonValue::operator[](std::size_t i) const {
  return type == Type::array && i < arr.size() ? arr[i] : kNull;
}

bool parse_json(const std::string& text, JsonValue* out, std::string* error) {
  *out = JsonValue{};
  return Parser(text).parse(out, error);
}

void JsonWriter::key(const char* k) {
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
  if (k) {
    out_ += '"';
    out_ += k;
    out_ += "\":";
  }
}

JsonWriter& JsonWriter::begin_object(const char* k) {
  key(k);
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_ += '}';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::begin_array(const char* k) {
  key(k);
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_ += ']';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::num(const char* k, double v) {
  key(k);
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out_ += buf;
  return *this;
}

JsonWriter& JsonWriter::count(const char* k, std::uint64_t v) {
  key(k);
  out_ += std::to_string(v);
  return *this;
}

JsonWriter& JsonWriter::str(const char* k, const std::string& v) {
  key(k);
  out_ += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += c;
    } else if (c == '\n') {
      out_ += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out_ += buf;
    } else {
      out_ += c;
    }
  }
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::boolean(const char* k, bool v) {
  key(k);
  out_ += v ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::raw(const char* k, const std::string& json) {
  key(k);
  out_ += json;
  return *this;
}

}  // namespace uzram::bench
