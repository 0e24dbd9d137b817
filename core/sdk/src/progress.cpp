// ProgressBar: redraws at most ~10 times a second on a TTY; prints nothing when piped.
#include "sapling/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include "sapling/log.hpp"

namespace sapling {

ProgressBar::ProgressBar(std::string label, double total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(std::chrono::steady_clock::now()),
      last_draw_(start_), enabled_(::isatty(STDERR_FILENO) && log_level() <= LogLevel::Info) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::advance(double amount, const std::string& note) {
  done_ += amount;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(note);
}

void ProgressBar::draw(const std::string& note) {
  const double elapsed = elapsed_seconds();
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  const double frac = total_ > 0 ? std::min(1.0, done_ / total_) : 0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  const double eta = rate > 0 ? (total_ - done_) / rate : 0;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3.0f%% %.0f %s, ETA %.0fs %s\x1b[K", label_.c_str(), filled,
               "##############################", width - filled, "", frac * 100, rate, unit_.c_str(), eta,
               note.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  draw("");
  std::fprintf(stderr, "\n");
}

}  // namespace sapling
