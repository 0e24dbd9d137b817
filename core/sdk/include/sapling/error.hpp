// The one exception type for user-facing failures, and fail() to throw it with a composed message.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

// Every error a user can cause (bad file, bad key, bad option) is a sapling::Error
// whose message already names where it happened ("recipe.toml:12: key 'lr': ...").
// The CLI prints it on one line and exits with status 1.
class SAPLING_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  ~Error() override;  // defined in the core so the typeinfo lives in one library
};

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

// Re-throws any exception with `context` prefixed ("file.pdb: " + what()).
[[noreturn]] SAPLING_API void rethrow_with_context(const std::string& context);

}  // namespace sapling
