// Proves the plugin template builds, loads through SAPLING_PLUGIN_PATH, registers and works.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "sapling/fields.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "sapling/structure_io.hpp"
#include "metrics_support.hpp"
#include "test_support.hpp"

namespace {

// Only the template builds into its own folder; a renamed copy builds into build/plugins, which the
// search path holds anyway (this folder then does not exist, and is skipped).
void load_template() {
  if (sapling::PluginManager::instance().is_loaded("template")) return;
  const auto dir = sapling::test::binary_dir() / "plugin_template";
  ::setenv("SAPLING_PLUGIN_PATH", dir.c_str(), 1);
  sapling::PluginManager::instance().load_search_path();
  ::unsetenv("SAPLING_PLUGIN_PATH");
}

}  // namespace

TEST_CASE("template plugin loads through SAPLING_PLUGIN_PATH and selects", "[plugins][template]") {
  load_template();
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

TEST_CASE("the template's field provider counts CA neighbours within 10 A, as by hand", "[plugins][template][fields]") {
  load_template();
  REQUIRE(sapling::FieldProviderRegistry::instance().contains("template_contact_number"));
  CHECK(sapling::field_source("template_contact_number") == "field provider 'template_contact_number' of plugin 'template'");
  auto chain = sapling::read_structure(sapling::test::source_dir() / "datasets/sample/psicov/1aba.pdb.gz").front();
  REQUIRE(chain.length() > 50);
  // One residue loses its CA: it gets NaN and no longer counts for its neighbours.
  const int64_t gone = 7;
  chain.coords[gone][1].fill_(std::nanf(""));
  const auto field = sapling::compute_field("template_contact_number", chain);
  REQUIRE(field.sizes() == torch::IntArrayRef({chain.length()}));
  REQUIRE(field.scalar_type() == torch::kFloat32);
  CHECK(std::isnan(field[gone].item<float>()));

  // By hand: Euclidean CA-CA distances in double, every other residue with a CA, <= 10 A.
  const auto ca = chain.coords.select(1, 1).to(torch::kFloat64).contiguous();
  const auto at = [&](int64_t i, int64_t k) { return ca[i][k].item<double>(); };
  const auto by_hand = [&](int64_t i) {
    int count = 0;
    for (int64_t j = 0; j < chain.length(); ++j) {
      if (j == i || std::isnan(at(j, 0))) continue;
      const double dx = at(i, 0) - at(j, 0), dy = at(i, 1) - at(j, 1), dz = at(i, 2) - at(j, 2);
      if (std::sqrt(dx * dx + dy * dy + dz * dz) <= 10.0) ++count;
    }
    return count;
  };
  for (const int64_t i : {int64_t{0}, gone - 1, gone + 1, int64_t{30}, chain.length() - 1}) {
    INFO("residue " << i);
    CHECK(field[i].item<float>() == static_cast<float>(by_hand(i)));
  }
  CHECK(field[30].item<float>() > 5);  // a real protein: an interior residue has many neighbours

  // A chain whose coordinates are not [L, 5, 3] is refused with the provider and the chain named.
  auto broken = chain;
  broken.coords = torch::zeros({2, 5, 3});
  CHECK_THROWS_WITH(sapling::compute_field("template_contact_number", broken),
                    Catch::Contains("field provider 'template_contact_number'") && Catch::Contains("coordinates"));
  CHECK_THROWS_WITH(sapling::compute_field("no_such_field", chain), Catch::Contains("'no_such_field'"));
}

TEST_CASE("the template's burial loss trains on its provider's field, and recipe check and plugins list name the provider",
          "[plugins][template][fields][cli]") {
  namespace fs = std::filesystem;
  const auto dir = sapling::test::temp_dir("template-burial");
  const auto quoted = [](const fs::path& p) { return "'" + p.string() + "'"; };
  const auto env = "SAPLING_PLUGIN_PATH=" + quoted(sapling::test::binary_dir() / "plugin_template") + " ";
  const auto recipe = dir / "burial.toml";
  {
    std::ofstream out(recipe);
    out << "base = " << quoted(sapling::test::source_dir() / "recipes/ablations/mlm_only.toml") << "\n"
        << "[losses.burial]\ncomponent = \"template_burial\"\nweight = 0.5\n";
  }
  const auto run = sapling::test::run_command(
      env + sapling::test::small_train_command(recipe.string(), sapling::test::fixtures_dir() / "esm2_tiny", dir / "run",
                                               "--max-steps 2"));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK(run.output.find("template_contact_number from the field provider 'template_contact_number' of plugin 'template'") !=
        std::string::npos);
  const auto train = sapling::test::read_metrics(dir / "run" / "metrics.jsonl", "train");
  REQUIRE_FALSE(train.empty());
  CHECK(train.back().contains("burial"));

  // Sequences only: the provider needs structures, and the refusal names it.
  const auto fasta = dir / "seqs.fasta";
  { std::ofstream(fasta) << ">a\nMKTAYIAKQRQISFVKSHFSRQ\n"; }
  const auto sequence_recipe = dir / "sequences.toml";
  {
    std::ofstream out(sequence_recipe);
    out << "base = " << quoted(sapling::test::source_dir() / "recipes/pretrain_esm2_8m.toml") << "\n"
        << "[losses.burial]\ncomponent = \"template_burial\"\n[data]\nsequences = " << quoted(fasta) << "\n";
  }
  const auto check =
      sapling::test::run_command(env + sapling::test::sapling_exe() + " recipe check " + quoted(sequence_recipe));
  INFO(check.output);
  CHECK(check.exit_code != 0);
  CHECK(check.output.find("reads the per-residue field 'template_contact_number'") != std::string::npos);
  CHECK(check.output.find("field provider 'template_contact_number' of plugin 'template'") != std::string::npos);

  const auto list = sapling::test::run_command(env + sapling::test::sapling_exe() + " plugins list --verbose");
  INFO(list.output);
  CHECK(list.output.find("field_provider template_contact_number") != std::string::npos);
  CHECK(list.output.find("gives per residue: Float [L]") != std::string::npos);
  CHECK(list.output.find("reads per-residue fields: template_contact_number") != std::string::npos);
}
