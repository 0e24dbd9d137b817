// The recipes shipped with sapling, by name: finding the folder, listing, resolving names, self-contained copies.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

struct ShippedRecipe {
  std::string name;            // path under the recipes folder without ".toml": "saesm2_8m", "ablations/mlm_only"
  std::filesystem::path file;  // the recipe file
  std::string purpose;         // first sentence of its leading comment block
  bool base_only = false;      // a fragment other recipes inherit (a "# base-only" line in its leading comment)
};

// The folder of shipped recipes: $SAPLING_RECIPES_DIR when set, else
// <executable>/../share/sapling/recipes (an installed sapling), else the
// source tree's recipes/ (a build folder). Fails naming the places looked at.
SAPLING_API std::filesystem::path shipped_recipes_dir();

// Every *.toml under `dir`, recursively: top-level recipes first, then each
// subfolder's, by name. Fails naming a recipe that has no leading comment.
SAPLING_API std::vector<ShippedRecipe> shipped_recipes(const std::filesystem::path& dir);

// The shipped recipe called `name` (".toml" optional); fails listing the close matches.
SAPLING_API ShippedRecipe find_shipped_recipe(const std::filesystem::path& dir, const std::string& name);

// False for arguments that are plainly paths (absolute, or starting with ./ or ../).
SAPLING_API bool could_be_recipe_name(const std::string& argument);

// A recipe argument on the command line: an existing file as given, else the
// shipped recipe of that name; fails when it is neither.
SAPLING_API std::filesystem::path resolve_recipe_argument(const std::string& argument);

// Writes a self-contained copy of `recipe`: its leading comment, then the
// recipe with its base chain resolved and relative paths re-pointed to work
// from the copy's folder (Recipe::relocated_text; load the plugins first so
// component paths are known). `dest` is a file, or an existing folder (or one
// ending in '/') to write <recipe's file name> into. Refuses to replace an
// existing file unless `force`. Returns the file written.
SAPLING_API std::filesystem::path copy_shipped_recipe(const ShippedRecipe& recipe, const std::filesystem::path& dest,
                                                      bool force);

}  // namespace sapling
