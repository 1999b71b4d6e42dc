// cli/json.cc - the two helpers of cli/json.h.
#include "cli/json.h"

#include <cmath>

namespace uzram::cli {

Json fixed_number(double v, int decimals) {
  if (!std::isfinite(v)) return nullptr;
  const double scale = std::pow(10.0, decimals);
  const double r = std::round(v * scale) / scale;
  return std::isfinite(r) ? Json(r) : Json(v);  // v * scale overflows only for huge v
}

std::string json_text(const Json& doc) {
  // error_handler_t::replace: dump() throws type_error 316 on invalid UTF-8 otherwise.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + '\n';
}

}  // namespace uzram::cli
