// cli/json.h - the JSON documents of `uzram load --json` and `uzram status --json`, built
// with nlohmann::ordered_json (Debian: nlohmann-json3-dev): keys in the order they are set,
// two-space indentation, a final newline. Nothing here throws: text that is not UTF-8 (a
// store name, an image path) is printed with each bad byte replaced by U+FFFD.
#ifndef UZRAM_CLI_JSON_H_
#define UZRAM_CLI_JSON_H_

#include <nlohmann/json.hpp>

#include <string>

namespace uzram::cli {

using Json = nlohmann::ordered_json;

// `v` rounded to `decimals` places as a JSON number (1.25 stays 1.25, 10 prints as 10.0);
// null when `v` is not finite, as JSON has no inf or nan.
[[nodiscard]] Json fixed_number(double v, int decimals);

// `doc` as printed: pretty, two-space indentation, invalid UTF-8 replaced, final newline.
[[nodiscard]] std::string json_text(const Json& doc);

}  // namespace uzram::cli

#endif  // UZRAM_CLI_JSON_H_
