// Plugin loading: good plugins, missing folders, API/LibTorch version mismatches, non-plugins, name clashes.
#include <catch2/catch.hpp>

#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "test_support.hpp"

namespace {
std::filesystem::path fixture(const std::string& name) {
  return sapling::test::binary_dir() / "test_plugins" / name / (name + ".so");
}
std::string failure_for(const std::filesystem::path& path) {
  for (const auto& f : sapling::PluginManager::instance().failures())
    if (f.path == path.string()) return f.reason;
  return "";
}
}  // namespace

TEST_CASE("a good plugin loads and registers its components", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  REQUIRE(manager.load_file(fixture("good_a")));
  CHECK(manager.is_loaded("fixture_good_a"));
  auto& registry = sapling::ResidueSelectorRegistry::instance();
  REQUIRE(registry.contains("fixture_keep_all_a"));
  CHECK(registry.find("fixture_keep_all_a").plugin == "fixture_good_a");
  auto selector = registry.create("fixture_keep_all_a", sapling::Options{});
  CHECK(selector->select(torch::zeros({4}), torch::Tensor()).all().item<bool>());
  // Loading the same plugin again is refused, not a crash, and the first copy stays.
  CHECK_FALSE(manager.load_file(fixture("good_a")));
  CHECK(registry.contains("fixture_keep_all_a"));
}

TEST_CASE("a missing plugin folder or file is not fatal", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  manager.load_directory("/nonexistent/sapling/plugins");
  const auto missing = std::filesystem::path("/nonexistent/sapling_missing.so");
  CHECK_FALSE(manager.load_file(missing));
  CHECK(failure_for(missing).find("cannot load library") != std::string::npos);
  CHECK_THROWS_WITH(sapling::ResidueSelectorRegistry::instance().find("no_such_selector"),
                    Catch::Contains("no residue_selector named 'no_such_selector'"));
}

TEST_CASE("a plugin built for another API version is refused naming both versions", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  CHECK_FALSE(manager.load_file(fixture("wrong_api")));
  const auto reason = failure_for(fixture("wrong_api"));
  INFO(reason);
  CHECK(reason.find("API version " + std::to_string(SAPLING_PLUGIN_API_VERSION + 100)) != std::string::npos);
  CHECK(reason.find("this sapling has version " + std::to_string(SAPLING_PLUGIN_API_VERSION)) != std::string::npos);
  CHECK_FALSE(manager.is_loaded("fixture_wrong_api"));
}

TEST_CASE("a plugin built with another LibTorch is refused naming both versions", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  CHECK_FALSE(manager.load_file(fixture("wrong_torch")));
  const auto reason = failure_for(fixture("wrong_torch"));
  INFO(reason);
  CHECK(reason.find("LibTorch 0.0.1") != std::string::npos);
  CHECK(reason.find(std::string("LibTorch ") + TORCH_VERSION) != std::string::npos);
}

TEST_CASE("a shared library that is not a plugin is recorded as such", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  CHECK_FALSE(manager.load_file(fixture("not_a_plugin")));
  CHECK(failure_for(fixture("not_a_plugin")).find("not a sapling plugin") != std::string::npos);
}

TEST_CASE("two plugins registering the same name: the second is refused and rolled back", "[plugins]") {
  auto& manager = sapling::PluginManager::instance();
  manager.load_file(fixture("good_a"));  // may already be loaded by another test case
  CHECK_FALSE(manager.load_file(fixture("clash")));
  const auto reason = failure_for(fixture("clash"));
  INFO(reason);
  CHECK(reason.find("registered twice") != std::string::npos);
  CHECK(reason.find("fixture_good_a") != std::string::npos);
  auto& registry = sapling::ResidueSelectorRegistry::instance();
  CHECK_FALSE(registry.contains("fixture_clash_only"));  // rolled back
  CHECK(registry.find("fixture_keep_all_a").plugin == "fixture_good_a");
  CHECK_FALSE(manager.is_loaded("fixture_clash"));
}

TEST_CASE("a recipe's folders, then SAPLING_PLUGIN_PATH, are searched before the build or install folder", "[plugins]") {
  const auto a = sapling::test::binary_dir() / "test_plugins" / "good_b";
  ::setenv("SAPLING_PLUGIN_PATH", ("/nonexistent:" + a.string()).c_str(), 1);
  auto path = sapling::PluginManager::instance().search_path({"/from/recipe"});
  ::unsetenv("SAPLING_PLUGIN_PATH");
  REQUIRE(path.size() == 4);
  CHECK(path[0] == "/from/recipe");
  CHECK(path[1] == "/nonexistent");
  CHECK(path[2] == a);
  CHECK(path[3] == sapling::default_plugin_dir());  // an author's build shadows an installed copy of the same plugin
}

TEST_CASE("sapling plugins list shows loaded plugins and failures", "[plugins][cli]") {
  const auto base = sapling::test::binary_dir() / "test_plugins";
  auto r = sapling::test::run_command("SAPLING_PLUGIN_PATH=" + (base / "good_b").string() + ":" +
                                      (base / "wrong_api").string() + " " + sapling::test::sapling_exe() +
                                      " plugins list");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("fixture_good_b") != std::string::npos);
  CHECK(r.output.find("residue_selector fixture_keep_all_b") != std::string::npos);
  CHECK(r.output.find("failed to load:") != std::string::npos);
  CHECK(r.output.find("wrong_api.so: plugin 'fixture_wrong_api' was built for plugin API version") != std::string::npos);
}

TEST_CASE("an author's build of a plugin shadows the copy beside sapling, and commands report libraries that fail", "[plugins][cli]") {
  const auto dir = sapling::test::temp_dir("plugin-shadow");
  const auto installed = sapling::default_plugin_dir() / "sapling_foldseek_3di.so";
  REQUIRE(std::filesystem::exists(installed));
  std::filesystem::copy_file(installed, dir / "sapling_foldseek_3di.so");
  auto r = sapling::test::run_command("SAPLING_PLUGIN_PATH=" + dir.string() + " " + sapling::test::sapling_exe() +
                                      " plugins list");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("foldseek_3di (" + (dir / "sapling_foldseek_3di.so").string()) != std::string::npos);
  CHECK(r.output.find(installed.string() + ": plugin 'foldseek_3di' is already loaded from " +
                      (dir / "sapling_foldseek_3di.so").string() + "; this copy is ignored") != std::string::npos);

  // --verbose says what each loss reads.
  r = sapling::test::run_command(sapling::test::sapling_exe() + " plugins list --verbose");
  CHECK(r.output.find("reads per-residue fields: pgnn") != std::string::npos);

  // Any command that loads plugins says which library failed, not only `plugins list`.
  const auto base = sapling::test::binary_dir() / "test_plugins";
  r = sapling::test::run_command("SAPLING_PLUGIN_PATH=" + (base / "wrong_api").string() + " " +
                                 sapling::test::sapling_exe() + " recipe check " +
                                 (sapling::test::source_dir() / "recipes" / "saesm2_8m.toml").string());
  INFO(r.output);
  CHECK(r.output.find("warning: plugin ") != std::string::npos);
  CHECK(r.output.find("wrong_api.so: plugin 'fixture_wrong_api' was built for plugin API version") != std::string::npos);
  std::filesystem::remove_all(dir);
}
