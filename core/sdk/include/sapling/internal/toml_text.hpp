// TOML text of a table as a person would write it: toml++'s layout, floats in their shortest round-trip form.
#pragma once
#include <string>
#include <toml++/toml.h>

#include "sapling/export.hpp"

namespace sapling {

// toml++'s formatter prints every float with 17 significant digits on GCC
// (0.07 becomes 0.070000000000000007); this prints the same document with each
// float in the shortest form that reads back to the same double (0.07).
SAPLING_API std::string format_toml(const toml::table& table);

// The rewrite alone: every float value of TOML `text` in its shortest round-trip
// form; keys, strings, integers and dates untouched.
SAPLING_API std::string shortest_toml_floats(const std::string& text);

}  // namespace sapling
