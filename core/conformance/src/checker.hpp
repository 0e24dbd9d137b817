// The conformance runner's check records: what a check expected, where (a context stack), and what failed.
#pragma once
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace sapling::conformance {

// Collects the failed expectations of one check on one component. A check goes on after a failed expectation
// (like Catch's CHECK), so one run reports everything that is wrong with a component.
class Checker {
 public:
  // `ok` false records `what` with the current context ("chain 1AY7 l: size(0) == length").
  bool expect(bool ok, const std::string& what);
  // Records a failure directly.
  void failure(const std::string& what) { expect(false, what); }
  // Informational output (diffs), printed under the check with --verbose.
  void note(const std::string& text) { notes_.push_back(text); }

  // Context of the expectations made while it lives: Checker::Context in(c, "chain " + name);
  class Context {
   public:
    Context(Checker& checker, std::string text) : checker_(checker) { checker_.context_.push_back(std::move(text)); }
    ~Context() { checker_.context_.pop_back(); }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

   private:
    Checker& checker_;
  };

  const std::vector<std::string>& failures() const { return failures_; }
  const std::vector<std::string>& notes() const { return notes_; }
  // Marks the check as not applicable here, saying why (it then neither passes nor fails).
  void skip(const std::string& why) { skipped_ = why; }
  const std::string& skipped() const { return skipped_; }

 private:
  std::vector<std::string> context_, failures_, notes_;
  std::string skipped_;
};

// Streams its arguments into one string: expect(ok, text("got ", n, " rows")).
template <typename... Args>
std::string text(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// True when `f` succeeds or throws sapling::Error (a clear, reported error), false for any other exception;
// `message` receives the error's text.
bool succeeds_or_reports(const std::function<void()>& f, std::string* message = nullptr);

}  // namespace sapling::conformance
