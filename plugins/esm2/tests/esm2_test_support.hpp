// Helpers shared by the ESM2 plugin's test files: loading a checkpoint folder through the registry, expecting
// a load to fail, and the tiny fixture.
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "test_support.hpp"

namespace sapling::test::esm2 {

// The two-layer ESM2 fixture (tests/fixtures/esm2_tiny): safetensors weights and an HF config.json.
inline std::filesystem::path tiny_dir() { return fixtures_dir() / "esm2_tiny"; }

// The bundled ESM2 (8M shape, float16 weights) that the quickstart uses.
inline std::filesystem::path bundled_model() { return source_dir() / "datasets" / "models" / "esm2_t6_8M_uniprot_f16"; }

// The ESM2 encoder of the checkpoint folder `dir`, built by the plugin the build made.
inline std::shared_ptr<SequenceEncoder> load(const std::filesystem::path& dir) {
  load_build_plugins();
  Options options;
  options.set("path", dir.string());
  return SequenceEncoderRegistry::instance().create("esm2", options);
}

// The message with which loading `dir` fails; fails the test when it loads.
inline std::string load_error(const std::filesystem::path& dir) {
  try {
    load(dir);
  } catch (const Error& e) {
    std::cout << "  esm2 loader error (expected): " << e.what() << "\n";
    return e.what();
  }
  FAIL("loading " << dir << " did not fail");
  return "";
}

}  // namespace sapling::test::esm2
