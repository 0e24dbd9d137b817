// A plugin's conformance examples (plugins/<name>/conformance.toml): how to build each component and with which inputs.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sapling/options.hpp"

namespace sapling::conformance {

// The file's tables (README.md of this folder has the format):
//   [inputs] structures = [FILE, ...]                 chains the checks use (default: the bundled three)
//   [inputs.sequence_encoder] component, options      a model the evaluation-task checks run
//   [KIND.NAME] options = {...}                       options to build component NAME of KIND with
//   [KIND.NAME] generate = {what, option, ...}        an input file the runner writes, passed as `option`
//   [KIND.NAME] train = {steps, lr, batch}            trainable tokenizers and pretraining objectives
// Paths are relative to the file. A component without a table is built with its defaults.
class Examples {
 public:
  Examples();  // no file: every component with its defaults
  static Examples load(const std::filesystem::path& file);

  const std::filesystem::path& file() const { return file_; }
  // Every [KIND.NAME] table, as (KIND, NAME).
  std::vector<std::pair<std::string, std::string>> components() const;
  // [KIND.NAME], or nullptr.
  const toml::table* component(const std::string& kind, const std::string& name) const;
  // [KIND.NAME] options validated against `schema` (an unknown key or wrong type is an error naming the file),
  // the rest defaults. Inputs that [KIND.NAME] generate names are not written here (see generate.hpp).
  Options options(const std::string& kind, const std::string& name, const OptionSchema& schema) const;
  // [KIND.NAME] train.KEY, or `fallback`.
  double train_setting(const std::string& kind, const std::string& name, const std::string& key, double fallback) const;
  // [inputs] structures, resolved against the file's folder; empty when the file names none.
  std::vector<std::filesystem::path> structures() const;
  // [inputs.KEY], or nullptr.
  const toml::table* inputs(const std::string& key) const;
  // Options of an [inputs.KEY] component table (component = NAME, options = {...}) against `schema`.
  Options input_options(const std::string& key, const OptionSchema& schema) const;

 private:
  std::filesystem::path file_;
  std::shared_ptr<toml::table> table_;
};

}  // namespace sapling::conformance
