// Residue selectors on hand-made loss vectors, and recipes that configure the alignment plugin (recipe check).
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/recipe.hpp"
#include "test_support.hpp"

namespace {

using sapling::ResidueSelectorRegistry;

std::shared_ptr<sapling::ResidueSelector> make_selector(
    const std::string& name, const std::vector<std::pair<std::string, sapling::OptionValue>>& set = {}) {
  sapling::test::load_build_plugins();
  auto& registry = ResidueSelectorRegistry::instance();
  auto options = sapling::Options::defaults(registry.find(name).schema);
  for (const auto& [key, value] : set) options.set(key, value);
  return registry.create(name, options);
}

torch::Tensor mask(std::initializer_list<int> bits) {
  return torch::tensor(std::vector<int>(bits), torch::kInt32).to(torch::kBool);
}

const torch::Tensor kNoReference{};

}  // namespace

TEST_CASE("selector none keeps everything, also for N = 0", "[alignment][selector]") {
  auto none = make_selector("none");
  CHECK_FALSE(none->needs_reference());
  CHECK(none->select(torch::tensor({3.0, 1.0}), kNoReference).equal(mask({1, 1})));
  CHECK(none->select(torch::zeros({0}), kNoReference).numel() == 0);
}

TEST_CASE("own_loss keeps the top or bottom int(ratio * N) by the model's loss", "[alignment][selector]") {
  const auto loss = torch::tensor({0.5, 2.0, 1.0, 3.0, 0.1});
  auto largest = make_selector("own_loss");  // defaults: largest, 0.8
  CHECK_FALSE(largest->needs_reference());
  CHECK(largest->select(loss, kNoReference).equal(mask({1, 1, 1, 1, 0})));  // int(0.8 * 5) = 4
  auto smallest = make_selector("own_loss", {{"mode", std::string("smallest")}});
  CHECK(smallest->select(loss, kNoReference).equal(mask({1, 1, 1, 0, 1})));
  auto largest_40 = make_selector("own_loss", {{"ratio", 0.4}});
  CHECK(largest_40->select(loss, kNoReference).equal(mask({0, 1, 0, 1, 0})));
  auto smallest_40 = make_selector("own_loss", {{"ratio", 0.4}, {"mode", std::string("smallest")}});
  CHECK(smallest_40->select(loss, kNoReference).equal(mask({1, 0, 0, 0, 1})));

  // The loss may carry a graph: the selection is detached and needs no grad.
  const auto with_grad = loss.clone().requires_grad_(true);
  CHECK_FALSE(largest->select(with_grad * 2, kNoReference).requires_grad());
}

TEST_CASE("excess_loss keeps the top ratio of current minus reference loss", "[alignment][selector]") {
  const auto loss = torch::tensor({1.0, 2.0, 3.0, 4.0});
  const auto reference = torch::tensor({0.5, 2.5, 1.0, 0.0});  // excess 0.5, -0.5, 2, 4
  auto excess = make_selector("excess_loss");
  CHECK(excess->needs_reference());
  CHECK(excess->select(loss, reference).equal(mask({1, 0, 1, 1})));  // int(0.8 * 4) = 3
  CHECK(make_selector("excess_loss", {{"ratio", 0.5}})->select(loss, reference).equal(mask({0, 0, 1, 1})));
  // The ranking is by excess, not by the model's own loss: residue 1 (loss 2) loses to residue 0 (loss 1).
  CHECK(make_selector("excess_loss", {{"ratio", 0.75}})->select(loss, reference).equal(mask({1, 0, 1, 1})));
  CHECK_THROWS_WITH(excess->select(loss, kNoReference), Catch::Contains("reference"));
  CHECK_THROWS_WITH(excess->select(loss, torch::zeros({3})), Catch::Contains("3 residues"));
}

TEST_CASE("selectors: ratio 1 keeps all, N = 0 and N = 1, ties, rounding", "[alignment][selector]") {
  const auto loss = torch::tensor({0.3, 0.1, 0.2});
  for (const char* name : {"own_loss", "excess_loss"}) {
    INFO(name);
    auto all = make_selector(name, {{"ratio", 1.0}});
    CHECK(all->select(loss, torch::zeros({3})).equal(mask({1, 1, 1})));
    CHECK(all->select(torch::zeros({0}), torch::zeros({0})).numel() == 0);
    auto default_ratio = make_selector(name);
    CHECK(default_ratio->select(torch::zeros({0}), torch::zeros({0})).numel() == 0);
    // Published floor: int(0.8 * 1) = 0 keeps nothing; ceil keeps the one residue.
    CHECK(default_ratio->select(torch::ones({1}), torch::zeros({1})).equal(mask({0})));
    auto ceil = make_selector(name, {{"rounding", std::string("ceil")}});
    CHECK(ceil->select(torch::ones({1}), torch::zeros({1})).equal(mask({1})));
    // 0.7 * 10 = 7.000000000000001 in doubles: both roundings keep exactly 7.
    const auto ten = torch::arange(10, torch::kFloat64);
    auto floor_70 = make_selector(name, {{"ratio", 0.7}});
    auto ceil_70 = make_selector(name, {{"ratio", 0.7}, {"rounding", std::string("ceil")}});
    CHECK(floor_70->select(ten, torch::zeros({10})).sum().item<int64_t>() == 7);
    CHECK(ceil_70->select(ten, torch::zeros({10})).sum().item<int64_t>() == 7);
    // 0.75 * 10 = 7.5: floor 7, ceil 8.
    CHECK(make_selector(name, {{"ratio", 0.75}})->select(ten, torch::zeros({10})).sum().item<int64_t>() == 7);
    CHECK(make_selector(name, {{"ratio", 0.75}, {"rounding", std::string("ceil")}})
              ->select(ten, torch::zeros({10}))
              .sum()
              .item<int64_t>() == 8);
    // Ties: the earlier residue wins.
    CHECK(make_selector(name, {{"ratio", 0.5}})->select(torch::ones({4}), torch::zeros({4})).equal(mask({1, 1, 0, 0})));
  }
  CHECK_THROWS_AS(make_selector("own_loss")->select(torch::zeros({2, 2}), kNoReference), sapling::Error);
}

namespace {

std::filesystem::path write_recipe(const std::string& text) {
  const auto path = sapling::test::temp_dir("alignment-recipe") / "recipe.toml";
  std::ofstream(path) << text;
  return path;
}

const char* kRecipe = R"([losses.mlm]
component = "mlm"

[losses.structure]
component = "structure_token"
input_dim = 8
weight = 0.5

[losses.contrastive]
component = "residue_contrastive"
plm_dim = 8
pgnn_dim = 6
weight = 0.5

[selector]
component = "excess_loss"
ratio = 0.8
)";

// The recipe with `line` (1-based) replaced; returns the validation error ("" if it passes).
std::string check_with_line(int line, const std::string& replacement) {
  std::istringstream in(kRecipe);
  std::string text, l;
  for (int n = 1; std::getline(in, l); ++n) text += (n == line ? replacement : l) + "\n";
  try {
    sapling::Recipe::load(write_recipe(text)).validate();
  } catch (const sapling::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a recipe configures the losses and the selector through the registry", "[alignment][recipe]") {
  sapling::test::load_build_plugins();
  const auto recipe = sapling::Recipe::load(write_recipe(kRecipe));
  REQUIRE_NOTHROW(recipe.validate());
  // Recipe::group_members documents "file order" but toml++ tables are sorted
  // maps, so it returns names alphabetically (reported to the lead).
  auto members = recipe.group_members("losses");
  std::sort(members.begin(), members.end());
  CHECK(members == std::vector<std::string>{"contrastive", "mlm", "structure"});

  auto [plugin, options] = recipe.component("losses.contrastive");
  CHECK(plugin == "residue_contrastive");
  CHECK(options.get_float("initial_temperature") == 0.07);
  CHECK(options.get_float("min_logit_scale") == 0.01);
  auto contrastive = sapling::AlignmentLossRegistry::instance().create(plugin, options, sapling::LossContext{});
  CHECK(contrastive->named_parameters()["seq_projection.weight"].sizes() == torch::IntArrayRef({6, 8}));

  auto [st_plugin, st_options] = recipe.component("losses.structure");
  CHECK(st_options.get_int("num_classes") == 0);  // 0: sized from the data's tokenizer by `sapling train`
  CHECK(st_options.get_float("weight") == 0.5);
  CHECK(recipe.component("losses.mlm").second.get_float("weight") == 1.0);

  auto [sel_plugin, sel_options] = recipe.component("selector");
  auto selector = ResidueSelectorRegistry::instance().create(sel_plugin, sel_options);
  CHECK(selector->needs_reference());
  CHECK(sel_options.origin("ratio").find("recipe.toml:17") != std::string::npos);
}

TEST_CASE("recipe check rejects bad alignment options, naming the line", "[alignment][recipe]") {
  sapling::test::load_build_plugins();
  CHECK(check_with_line(0, "") == "");
  std::string e = check_with_line(17, "ratoi = 0.8");
  CHECK_THAT(e, Catch::Contains("recipe.toml:17") && Catch::Contains("ratoi") && Catch::Contains("ratio"));
  e = check_with_line(17, "ratio = 0.0");
  CHECK_THAT(e, Catch::Contains("recipe.toml:17") && Catch::Contains("ratio"));
  e = check_with_line(17, "ratio = 1.5");
  CHECK_THAT(e, Catch::Contains("recipe.toml:17"));
  e = check_with_line(7, "weight = -1.0");
  CHECK_THAT(e, Catch::Contains("recipe.toml:7") && Catch::Contains("weight"));
  CHECK(check_with_line(6, "") == "");  // input_dim may be left to the trainer (0 = the model's)
  e = check_with_line(6, "input_dim = -8");
  CHECK_THAT(e, Catch::Contains("recipe.toml:6") && Catch::Contains("input_dim"));
  e = check_with_line(16, "component = \"excess_los\"");
  CHECK_THAT(e, Catch::Contains("recipe.toml:16") && Catch::Contains("excess_loss"));
  e = check_with_line(12, "min_logit_scale = -0.5");
  CHECK_THAT(e, Catch::Contains("recipe.toml:12") && Catch::Contains("min_logit_scale"));
  e = check_with_line(17, "mode = \"biggest\"");
  CHECK_THAT(e, Catch::Contains("mode"));  // excess_loss has no mode
}

TEST_CASE("sapling recipe check validates the alignment plugins", "[alignment][recipe][cli]") {
  const auto good = write_recipe(kRecipe);
  auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe check " + good.string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  std::string bad = kRecipe;
  bad.replace(bad.find("ratio = 0.8"), 11, "ratoi = 0.8");
  r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe check " + write_recipe(bad).string());
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK(r.output.find("recipe.toml:17") != std::string::npos);
}
