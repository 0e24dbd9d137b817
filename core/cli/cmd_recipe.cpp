// `sapling recipe check PATH...` validates recipes without building tensors; `recipe show` prints one resolved.
#include <algorithm>
#include <iostream>

#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/plugin.hpp"
#include "sapling/recipe.hpp"

namespace sapling::cli {
namespace {

std::vector<std::filesystem::path> collect(const std::vector<std::string>& inputs) {
  std::vector<std::filesystem::path> files;
  for (const auto& in : inputs) {
    std::filesystem::path p(in);
    if (std::filesystem::is_directory(p)) {
      std::vector<std::filesystem::path> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file() && e.path().extension() == ".toml") found.push_back(e.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (std::filesystem::exists(p)) {
      files.push_back(p);
    } else {
      fail(in, ": no such recipe file or folder");
    }
  }
  return files;
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("action", po::value<std::string>(), "check | show")(
      "paths", po::value<std::vector<std::string>>(), "recipe files or folders")(
      "set", po::value<std::vector<std::string>>(), "override: table.key=value (repeatable)");
  po::positional_options_description pos;
  pos.add("action", 1).add("paths", -1);
  po::variables_map vm;
  const std::string usage =
      "usage: sapling recipe check PATH... [--set table.key=value]\n"
      "       sapling recipe show RECIPE [--set table.key=value]";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("action") || !vm.count("paths")) fail("expected an action and at least one path\n", usage);
  const auto action = vm["action"].as<std::string>();
  const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const auto files = collect(vm["paths"].as<std::vector<std::string>>());
  if (action == "show") {
    if (files.size() != 1) fail("recipe show takes exactly one recipe");
    Recipe recipe = Recipe::load(files[0], overrides);
    load_plugins([&] {
      std::vector<std::string> v;
      for (const auto& p : recipe.plugin_paths()) v.push_back(p.string());
      return v;
    }());
    recipe.validate();
    std::cout << recipe.resolved_text() << std::endl;
    return 0;
  }
  if (action != "check") fail("unknown action '", action, "' (expected: check or show)");
  load_plugins();
  int bad = 0;
  for (const auto& f : files) {
    try {
      Recipe recipe = Recipe::load(f, overrides);
      for (const auto& dir : recipe.plugin_paths()) PluginManager::instance().load_directory(dir);
      recipe.validate();
      std::cout << "ok      " << f.string() << "\n";
    } catch (const Error& e) {
      std::cout << "FAILED  " << e.what() << "\n";
      ++bad;
    }
  }
  std::cout << files.size() - bad << " of " << files.size() << " recipes valid" << std::endl;
  return bad == 0 ? 0 : 1;
}

Register reg("recipe", "check recipes without building anything, or show one fully resolved", run);

}  // namespace
}  // namespace sapling::cli
