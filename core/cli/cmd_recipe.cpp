// `sapling recipe list | copy | check | show`: the shipped recipes by name, self-contained copies, validation, resolved text.
#include <algorithm>
#include <iostream>

#include "command.hpp"
#include "sapling/error.hpp"
#include "sapling/plugin.hpp"
#include "sapling/recipe.hpp"
#include "sapling/internal/recipe_catalog.hpp"
#include "sapling/internal/training.hpp"
#include "tokenizer_recipe.hpp"  // tokenizer recipes validate through train-tokenizer's rules

namespace sapling::cli::recipe_command {  // one namespace per command: the CLI is a unity build
namespace {

// Files and folders as given; a missing file may be a shipped recipe's name.
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
    } else if (std::filesystem::exists(p) || !could_be_recipe_name(in)) {
      if (!std::filesystem::exists(p)) fail(in, ": no such recipe file or folder");
      files.push_back(p);
    } else {
      files.push_back(resolve_recipe_argument(in));
    }
  }
  return files;
}

// A training recipe through Recipe::validate() and the loss-field check, a tokenizer recipe ([tokenizer])
// through its own rules.
void check(const Recipe& recipe) {
  if (is_tokenizer_recipe(recipe)) {
    read_tokenizer_recipe(recipe);
  } else {
    recipe.validate();
    check_loss_fields(recipe);
  }
}

int list(bool all) {
  const auto dir = shipped_recipes_dir();
  const auto recipes = shipped_recipes(dir);
  size_t width = 0;
  for (const auto& r : recipes)
    if (all || !r.base_only) width = std::max(width, r.name.size());
  for (const auto& r : recipes) {
    if (r.base_only && !all) continue;
    std::cout << r.name << std::string(width + 2 - r.name.size(), ' ') << (r.base_only ? "[base only] " : "")
              << r.purpose << "\n";
  }
  std::cout << "\n(" << dir.string() << "; `sapling recipe copy NAME DEST` writes an editable copy"
            << (all ? "" : ", --all also lists the base-only fragments") << ")" << std::endl;
  return 0;
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("action", po::value<std::string>(), "list | copy | check | show")(
      "paths", po::value<std::vector<std::string>>(), "recipe files, folders or shipped recipe names")(
      "set", po::value<std::vector<std::string>>(), "override: table.key=value (repeatable; check and show)")(
      "force", po::bool_switch(), "copy: replace DEST when it exists")(
      "all", po::bool_switch(), "list: also the base-only fragments other recipes inherit");
  po::positional_options_description pos;
  pos.add("action", 1).add("paths", -1);
  po::variables_map vm;
  const std::string usage =
      "usage: sapling recipe list [--all]\n"
      "       sapling recipe copy NAME DEST [--force]\n"
      "       sapling recipe check PATH... [--set table.key=value]\n"
      "       sapling recipe show RECIPE [--set table.key=value]\n\n"
      "NAME is a shipped recipe's path under the recipes folder without .toml (saesm2_8m, ablations/mlm_only);\n"
      "RECIPE and PATH may be a file or such a name. copy writes one self-contained file (base chain resolved,\n"
      "relative paths re-pointed) to DEST, a file or an existing folder.";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("action")) fail("expected an action\n", usage);
  const auto action = vm["action"].as<std::string>();
  const auto paths = vm.count("paths") ? vm["paths"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (action == "list") {
    if (!paths.empty()) fail("recipe list takes no arguments");
    return list(vm["all"].as<bool>());
  }
  if (action == "copy") {
    if (paths.size() != 2) fail("recipe copy takes a shipped recipe name and a destination\n", usage);
    const auto recipe = find_shipped_recipe(shipped_recipes_dir(), paths[0]);
    load_plugins();  // component schemas say which options are paths
    const auto file = copy_shipped_recipe(recipe, paths[1], vm["force"].as<bool>());
    std::cout << "wrote " << file.string() << " (from " << recipe.file.string() << ")" << std::endl;
    return 0;
  }
  if (action != "check" && action != "show")
    fail("unknown action '", action, "' (expected: list, copy, check or show)");
  if (paths.empty()) fail("expected at least one recipe\n", usage);
  const auto files = collect(paths);
  if (action == "show") {
    if (files.size() != 1) fail("recipe show takes exactly one recipe");
    Recipe recipe = Recipe::load(files[0], overrides);
    load_plugins([&] {
      std::vector<std::string> v;
      for (const auto& p : recipe.plugin_paths()) v.push_back(p.string());
      return v;
    }());
    check(recipe);
    std::cout << recipe.resolved_text() << std::endl;
    return 0;
  }
  load_plugins();
  int bad = 0;
  for (const auto& f : files) {
    try {
      Recipe recipe = Recipe::load(f, overrides);
      for (const auto& dir : recipe.plugin_paths()) PluginManager::instance().load_directory(dir);
      check(recipe);
      std::cout << "ok      " << f.string() << "\n";
    } catch (const Error& e) {
      std::cout << "FAILED  " << e.what() << "\n";
      ++bad;
    }
  }
  std::cout << files.size() - bad << " of " << files.size() << " recipes valid" << std::endl;
  return bad == 0 ? 0 : 1;
}

Register reg("recipe", "list the shipped recipes, copy one to edit, check recipes, or show one fully resolved", run);

}  // namespace
}  // namespace sapling::cli::recipe_command
