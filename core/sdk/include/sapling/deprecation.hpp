// Old spellings (flags, recipe keys) that still work for one release: one wording for every such warning.
#pragma once
#include <string>

#include "sapling/log.hpp"

namespace sapling {

// The release that still reads old spellings, and says so in each warning.
inline constexpr const char* kDeprecationRelease = "sapling 0.2";

// Warns "OLD is now called NEW (WHY); sapling 0.2 still reads the old name, the next release will not (HINT)".
// `why` (optional) says why the name changed, `hint` (optional) what rewrites it. Each call warns: call sites
// that may run more than once per use (a recipe read twice) keep their own "said once" set.
inline void warn_renamed(const std::string& old_name, const std::string& new_name, const std::string& why = "",
                         const std::string& hint = "") {
  warn(old_name, " is now called ", new_name, why.empty() ? "" : " (" + why + ")", "; ", kDeprecationRelease,
       " still reads the old name, the next release will not", hint.empty() ? "" : " (" + hint + ")");
}

}  // namespace sapling
