// Proves the plugin template builds, loads through SAPLING_PLUGIN_PATH, registers and works.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
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
