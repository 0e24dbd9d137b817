// Hub ids ("owner/name[@revision]") resolved in a Hugging Face cache laid out as huggingface_hub writes it.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/internal/hub_cache.hpp"
#include "sapling/model_loading.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

// HF_HUB_CACHE for the test's duration (the previous value, or none, afterwards).
class ScopedHubCache {
 public:
  explicit ScopedHubCache(const fs::path& dir) {
    if (const char* old = std::getenv("HF_HUB_CACHE")) old_ = old;
    ::setenv("HF_HUB_CACHE", dir.c_str(), 1);
  }
  ~ScopedHubCache() {
    if (old_.empty()) ::unsetenv("HF_HUB_CACHE");
    else ::setenv("HF_HUB_CACHE", old_.c_str(), 1);
  }

 private:
  std::string old_;
};

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// models--OWNER--NAME/{refs/main, snapshots/<commit>/...} with the bundled tiny ESM2's files.
fs::path make_cache(const fs::path& root) {
  const auto repo = root / "models--facebook--esm2_t6_8M_UR50D";
  const auto snapshot = repo / "snapshots" / kCommit;
  fs::create_directories(snapshot);
  fs::create_directories(repo / "refs");
  for (const char* file : {"config.json", "model.safetensors"})
    fs::copy_file(sapling::test::source_dir() / "tests/fixtures/esm2_tiny" / file, snapshot / file);
  sapling::write_file_atomic(repo / "refs" / "main", kCommit);  // no newline, as the hub library writes it
  return snapshot;
}

}  // namespace

TEST_CASE("hub ids are told apart from paths", "[hub_cache]") {
  CHECK(sapling::looks_like_hub_id("facebook/esm2_t33_650M_UR50D"));
  CHECK(sapling::looks_like_hub_id("chandar-lab/AMPLIFY_350M"));
  CHECK(sapling::looks_like_hub_id("chandar-lab/AMPLIFY_350M@v1.0"));
  CHECK_FALSE(sapling::looks_like_hub_id("./facebook/esm2"));
  CHECK_FALSE(sapling::looks_like_hub_id("../models/esm2_t6_8M_UR50D"));
  CHECK_FALSE(sapling::looks_like_hub_id("/abs/esm2"));
  CHECK_FALSE(sapling::looks_like_hub_id("esm2_t6_8M_UR50D"));
  CHECK_FALSE(sapling::looks_like_hub_id("a/b/c"));
}

TEST_CASE("a hub id resolves to its snapshot in the local cache, and a missing one names the download command",
          "[hub_cache]") {
  const auto root = sapling::test::temp_dir("hub-cache");
  const auto snapshot = make_cache(root);
  ScopedHubCache cache(root);
  CHECK(sapling::hub_cache_dir() == root);

  CHECK(sapling::find_hub_snapshot("facebook/esm2_t6_8M_UR50D") == snapshot);
  CHECK(sapling::find_hub_snapshot("facebook/esm2_t6_8M_UR50D@" + kCommit) == snapshot);
  CHECK_FALSE(sapling::find_hub_snapshot("facebook/esm2_t6_8M_UR50D@v2"));
  CHECK(sapling::resolve_model_folder("facebook/esm2_t6_8M_UR50D", "recipes/facebook/esm2_t6_8M_UR50D") == snapshot);

  // The encoder loads from it as from the folder.
  sapling::test::load_build_plugins();
  auto model = sapling::load_sequence_encoder("facebook/esm2_t6_8M_UR50D");
  CHECK(model->family() == "esm2");

  CHECK_THROWS_WITH(sapling::resolve_model_folder("facebook/esm2_t33_650M_UR50D", "facebook/esm2_t33_650M_UR50D"),
                    Catch::Contains("hf download facebook/esm2_t33_650M_UR50D") &&
                        Catch::Contains(root.string()));
  // A path that exists wins over the cache; an ordinary missing path is left to the loader's own error.
  CHECK(sapling::resolve_model_folder("x/y", root) == root);
  CHECK(sapling::resolve_model_folder("../missing", "../missing") == fs::path("../missing"));
  fs::remove_all(root);
}
