// bench/macro/json.cc - JsonView and the parse / print helpers of json.h.
#include "json.h"

namespace uzram::bench {

namespace {

const Json kNull;

}  // namespace

JsonView JsonView::operator[](std::string_view key) const {
  if (!j_->is_object()) return kNull;
  const auto it = j_->find(std::string(key));
  return it == j_->end() ? kNull : *it;
}

JsonView JsonView::operator[](std::size_t i) const {
  return j_->is_array() && i < j_->size() ? (*j_)[i] : kNull;
}

double JsonView::number_or(double fallback) const {
  return j_->is_number() ? j_->get<double>() : fallback;
}

std::string JsonView::string_or_empty() const {
  return j_->is_string() ? j_->get<std::string>() : std::string();
}

std::size_t JsonView::size() const { return j_->is_array() || j_->is_object() ? j_->size() : 0; }

bool parse_json(const std::string& text, Json* out) {
  *out = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

std::string json_text(const Json& doc) {
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace uzram::bench
