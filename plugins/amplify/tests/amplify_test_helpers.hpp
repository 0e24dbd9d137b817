// Shared helpers for the AMPLIFY plugin tests: building models through the registry, fixture paths.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string>

#include "sapling/interfaces.hpp"
#include "test_support.hpp"

namespace amplify_test {

inline std::filesystem::path fixture_model_dir() { return sapling::test::fixtures_dir() / "amplify_tiny"; }
inline std::filesystem::path fixture_io_file() {
  return sapling::test::fixtures_dir() / "amplify_tiny_io.safetensors";
}
inline std::filesystem::path small_model_dir() {
  return sapling::test::data_path("amplify_small_uniprot");
}

// The public path: plugins from the build folder, then the registry.
inline std::shared_ptr<sapling::SequenceEncoder> create(const std::string& key, const std::string& value) {
  sapling::test::load_build_plugins();
  sapling::Options options;
  options.set(key, value);
  return sapling::SequenceEncoderRegistry::instance().create("amplify", options);
}

inline std::shared_ptr<sapling::SequenceEncoder> load(const std::filesystem::path& dir) {
  auto model = create("path", dir.string());
  model->eval();
  return model;
}

}  // namespace amplify_test
