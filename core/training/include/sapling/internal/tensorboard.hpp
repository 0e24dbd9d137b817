// TensorBoard event files (scalars): what torch.utils.tensorboard.SummaryWriter writes, readable by TensorBoard.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

// Appends scalar summaries to a new `events.out.tfevents.<time>.<host>.<pid>` file in `dir` (created), in the
// TFRecord framing TensorBoard reads (length, masked CRC-32C, Event protocol buffer, masked CRC-32C). Each record
// is flushed as written, so a crashed run's curves survive up to the last scalar.
class SAPLING_API TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path& dir);

  void add_scalar(const std::string& tag, double value, int64_t step);
  // A resumed run: TensorBoard drops what earlier files logged at `step` and later (those steps are redone).
  void restart_at(int64_t step);

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_event(const std::string& event);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace sapling
