// Checker: records failed expectations with their context.
#include "checker.hpp"

#include "sapling/error.hpp"

namespace sapling::conformance {

bool Checker::expect(bool ok, const std::string& what) {
  if (ok) return true;
  std::string where;
  for (const auto& c : context_) where += c + ": ";
  failures_.push_back(where + what);
  return false;
}

bool succeeds_or_reports(const std::function<void()>& f, std::string* message) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    if (message) *message = e.what();
    return true;
  } catch (const std::exception& e) {
    if (message) *message = e.what();
    return false;
  }
}

}  // namespace sapling::conformance
