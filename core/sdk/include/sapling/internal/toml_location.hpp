// Where a TOML value came from, for error messages: "file:line", or "--set" for a command-line override.
#pragma once

#include <string>
#include <toml++/toml.h>

namespace sapling {

/// `unnamed` stands in for the file name of a document parsed from memory without a path.
inline std::string toml_location(const toml::source_region& src, const std::string& unnamed = "<recipe>") {
  if (src.path && *src.path == "command line") return "--set";
  return (src.path ? *src.path : unnamed) + ":" + std::to_string(src.begin.line);
}

}  // namespace sapling
