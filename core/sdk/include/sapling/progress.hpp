// A terminal progress bar with rate and ETA (silent when stderr is not a terminal).
#pragma once
#include <chrono>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

class SAPLING_API ProgressBar {
 public:
  // `total` units of work (e.g. residues); `unit` names them in the rate ("res/s").
  ProgressBar(std::string label, double total, std::string unit);
  ~ProgressBar();
  void advance(double amount, const std::string& note = "");
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(const std::string& note);
  std::string label_, unit_;
  double total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool enabled_, finished_ = false;
};

}  // namespace sapling
