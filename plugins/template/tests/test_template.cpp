// Proves the plugin template builds, loads through SAPLING_PLUGIN_PATH, registers and works.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "metrics_support.hpp"
#include "test_support.hpp"

TEST_CASE("template plugin loads through SAPLING_PLUGIN_PATH and selects", "[plugins][template]") {
  // Only the template builds into its own folder; a renamed copy builds into build/plugins, which the
  // search path holds anyway (this folder then does not exist, and is skipped).
  const auto dir = sapling::test::binary_dir() / "plugin_template";
  ::setenv("SAPLING_PLUGIN_PATH", dir.c_str(), 1);
  sapling::PluginManager::instance().load_search_path();
  ::unsetenv("SAPLING_PLUGIN_PATH");
  REQUIRE(sapling::PluginManager::instance().is_loaded("template"));

  auto& registry = sapling::ResidueSelectorRegistry::instance();
  REQUIRE(registry.contains("template_threshold"));
  CHECK(registry.find("template_threshold").plugin == "template");

  auto options = sapling::Options::defaults(registry.find("template_threshold").schema);
  options.set("threshold", 1.5);
  auto selector = registry.create("template_threshold", options);
  auto kept = selector->select(torch::tensor({0.5, 1.5, 3.0}), torch::Tensor());
  CHECK(kept.equal(torch::tensor({false, true, true})));
  CHECK_FALSE(selector->needs_reference());
}

TEST_CASE("the CLI lists the template plugin from SAPLING_PLUGIN_PATH", "[plugins][template][cli]") {
  const auto dir = sapling::test::binary_dir() / "plugin_template";
  auto r = sapling::test::run_command("SAPLING_PLUGIN_PATH=" + dir.string() + " " + sapling::test::sapling_exe() +
                                      " plugins list");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("residue_selector template_threshold") != std::string::npos);
}

TEST_CASE("the template loss reads the bfactor field in training and recipe check refuses data without it",
          "[plugins][template][cli]") {
  namespace fs = std::filesystem;
  const auto dir = sapling::test::temp_dir("template-bfactor");
  const auto quoted = [](const fs::path& p) { return "'" + p.string() + "'"; };
  const auto env = "SAPLING_PLUGIN_PATH=" + quoted(sapling::test::binary_dir() / "plugin_template") + " ";
  // The quickstart's masked-LM control plus the template's loss on each residue's B-factor.
  const auto recipe = dir / "bfactor.toml";
  {
    std::ofstream out(recipe);
    out << "base = " << quoted(sapling::test::source_dir() / "recipes/ablations/mlm_only.toml") << "\n"
        << "[losses.bfactor]\ncomponent = \"template_bfactor\"\nweight = 0.5\n";
  }
  // small_train_command joins recipes/ with the name, and an absolute path replaces it.
  const auto run = sapling::test::run_command(
      env + sapling::test::small_train_command(recipe.string(), sapling::test::fixtures_dir() / "esm2_tiny", dir / "run",
                                               "--max-steps 2"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const auto train = sapling::test::read_metrics(dir / "run" / "metrics.jsonl", "train");
  REQUIRE_FALSE(train.empty());
  CHECK(train.back().contains("bfactor"));

  // The loss on a FASTA file (the sequence-only pretraining recipe): no coordinates, no B-factors.
  const auto fasta = dir / "seqs.fasta";
  { std::ofstream(fasta) << ">a\nMKTAYIAKQRQISFVKSHFSRQ\n>b\nGSHMLEDPVAG\n"; }
  const auto sequence_recipe = dir / "sequences.toml";
  {
    std::ofstream out(sequence_recipe);
    out << "base = " << quoted(sapling::test::source_dir() / "recipes/pretrain_esm2_8m.toml") << "\n"
        << "[losses.bfactor]\ncomponent = \"template_bfactor\"\n[data]\nsequences = " << quoted(fasta) << "\n";
  }
  const auto check =
      sapling::test::run_command(env + sapling::test::sapling_exe() + " recipe check " + quoted(sequence_recipe));
  INFO(check.output);
  CHECK(check.exit_code != 0);
  CHECK(check.output.find("reads the per-residue field 'bfactor'") != std::string::npos);
}
