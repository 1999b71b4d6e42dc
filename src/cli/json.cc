// cli/json.cc - JsonWriter.
#include "cli/json.h"

#include <fmt/format.h>

#include <cmath>

namespace uzram::cli {

std::string json_quote(std::string_view text) {
  std::string r = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\r': r += "\\r"; break;
      case '\t': r += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          r += fmt::format("\\u{:04x}", c);
        } else {
          r += ch;  // UTF-8 passes through; other high bytes are the caller's text
        }
    }
  }
  return r + "\"";
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!counts_.empty()) {
    out_ += counts_.back()++ ? ",\n" : "\n";
    out_.append(2 * counts_.size(), ' ');
  }
}

void JsonWriter::open(char c) {
  before_value();
  out_ += c;
  counts_.push_back(0);
}

void JsonWriter::close(char c) {
  const int n = counts_.back();
  counts_.pop_back();
  if (n) {
    out_ += '\n';
    out_.append(2 * counts_.size(), ' ');
  }
  out_ += c;
  if (counts_.empty()) out_ += '\n';
}

JsonWriter& JsonWriter::begin_object() {
  open('{');
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  close('}');
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  open('[');
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  close(']');
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  before_value();
  out_ += json_quote(name) + ": ";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
  before_value();
  out_ += json_quote(text);
  return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t number) {
  before_value();
  out_ += std::to_string(number);
  return *this;
}

JsonWriter& JsonWriter::value(double number, int decimals) {
  if (!std::isfinite(number)) return null();  // JSON has no inf/nan
  before_value();
  out_ += fmt::format("{:.{}f}", number, decimals);
  return *this;
}

JsonWriter& JsonWriter::value(bool flag) {
  before_value();
  out_ += flag ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::null() {
  before_value();
  out_ += "null";
  return *this;
}

}  // namespace uzram::cli
