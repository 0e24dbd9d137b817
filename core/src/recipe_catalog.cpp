// Shipped recipes by name: locating the recipes folder, purposes from leading comments, close matches, copies.
#include "sapling/internal/recipe_catalog.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/recipe.hpp"

namespace sapling {

namespace fs = std::filesystem;

namespace {

constexpr const char* kBaseOnlyMarker = "base-only";
constexpr size_t kPurposeLength = 110;

// The comment lines at the top of a recipe, without "# ".
std::vector<std::string> leading_comment(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail(file.string(), ": cannot read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() && lines.empty()) continue;
    if (line.rfind('#', 0) != 0) break;
    line.erase(0, 1);
    if (!line.empty() && line[0] == ' ') line.erase(0, 1);
    lines.push_back(line);
  }
  return lines;
}

bool is_marker(const std::string& line) { return line.rfind(kBaseOnlyMarker, 0) == 0; }

// The first sentence of the comment, cut at a word when long.
std::string purpose_of(const std::vector<std::string>& comment) {
  std::string text;
  for (const auto& line : comment) {
    if (is_marker(line)) continue;
    if (line.empty()) break;  // a blank comment line ends the first paragraph
    text += (text.empty() ? "" : " ") + line;
  }
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '.' && (i + 1 == text.size() || text[i + 1] == ' ')) {
      text.resize(i + 1);
      break;
    }
  if (text.size() > kPurposeLength) {
    const auto cut = text.rfind(' ', kPurposeLength - 3);
    text = text.substr(0, cut == std::string::npos ? kPurposeLength - 3 : cut) + "...";
  }
  return text;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Names within a few edits of `name`, or containing it (or its last part), closest first; at most 5.
std::vector<std::string> close_matches(const std::string& name, const std::vector<ShippedRecipe>& recipes) {
  const auto tail = name.substr(name.find_last_of('/') == std::string::npos ? 0 : name.find_last_of('/') + 1);
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& r : recipes) {
    const auto short_name = r.name.substr(r.name.find_last_of('/') == std::string::npos ? 0 : r.name.find_last_of('/') + 1);
    const size_t d = std::min(edit_distance(name, r.name), edit_distance(tail, short_name));
    const bool contains = !tail.empty() && r.name.find(tail) != std::string::npos;
    if (d <= std::max<size_t>(2, name.size() / 3) || contains) scored.emplace_back(contains ? std::min<size_t>(d, 1) : d, r.name);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < 5; ++i) out.push_back(scored[i].second);
  return out;
}

fs::path executable_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

}  // namespace

fs::path shipped_recipes_dir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("SAPLING_RECIPES_DIR"); env && *env) candidates.emplace_back(env);
  const auto here = executable_dir();
  if (!here.empty()) {
    candidates.push_back(here.parent_path() / "share" / "sapling" / "recipes");  // <prefix>/bin/sapling
    candidates.push_back(here.parent_path() / "recipes");                        // <source>/build/sapling
  }
#ifdef SAPLING_SOURCE_RECIPES_DIR
  candidates.emplace_back(SAPLING_SOURCE_RECIPES_DIR);  // a build folder anywhere, tests in build/tests
#endif
  for (const auto& c : candidates)
    if (fs::is_directory(c)) return c;
  std::string looked;
  for (const auto& c : candidates) looked += (looked.empty() ? "" : ", ") + c.string();
  fail("cannot find the shipped recipes folder (looked in: ", looked, "); set SAPLING_RECIPES_DIR");
}

std::vector<ShippedRecipe> shipped_recipes(const fs::path& dir) {
  std::vector<ShippedRecipe> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file() || it->path().extension() != ".toml") continue;
    ShippedRecipe r;
    r.file = it->path();
    r.name = it->path().lexically_relative(dir).replace_extension().generic_string();
    const auto comment = leading_comment(r.file);
    r.purpose = purpose_of(comment);
    if (r.purpose.empty()) fail(r.file.string(), ": a shipped recipe starts with a comment line saying what it is for");
    r.base_only = std::any_of(comment.begin(), comment.end(), is_marker);
    out.push_back(std::move(r));
  }
  if (ec) fail(dir.string(), ": cannot list the recipes folder (", ec.message(), ")");
  std::sort(out.begin(), out.end(), [](const ShippedRecipe& a, const ShippedRecipe& b) {
    const auto depth = [](const std::string& n) { return std::count(n.begin(), n.end(), '/'); };
    return std::make_pair(depth(a.name), a.name) < std::make_pair(depth(b.name), b.name);
  });
  return out;
}

ShippedRecipe find_shipped_recipe(const fs::path& dir, const std::string& name) {
  std::string wanted = name;
  if (wanted.size() > 5 && wanted.compare(wanted.size() - 5, 5, ".toml") == 0) wanted.resize(wanted.size() - 5);
  const auto recipes = shipped_recipes(dir);
  for (const auto& r : recipes)
    if (r.name == wanted) return r;
  const auto close = close_matches(wanted, recipes);
  std::string list;
  for (const auto& c : close) list += (list.empty() ? "" : ", ") + c;
  fail("no shipped recipe named '", name, "'", close.empty() ? "" : " (close matches: " + list + ")",
       "; `sapling recipe list` shows all of them (", dir.string(), ")");
}

bool could_be_recipe_name(const std::string& argument) {
  return !argument.empty() && argument[0] != '/' && argument.rfind("./", 0) != 0 && argument.rfind("../", 0) != 0;
}

fs::path resolve_recipe_argument(const std::string& argument) {
  if (fs::exists(argument)) return argument;
  if (!could_be_recipe_name(argument)) fail(argument, ": no such recipe file");
  fs::path dir;
  try {
    dir = shipped_recipes_dir();
  } catch (const Error&) {
    fail(argument, ": no such recipe file");
  }
  try {
    return find_shipped_recipe(dir, argument).file;
  } catch (const Error& e) {
    fail(argument, ": no such recipe file, and ", e.what());
  }
}

fs::path copy_shipped_recipe(const ShippedRecipe& recipe, const fs::path& dest, bool force) {
  fs::path file = dest;
  const auto text = dest.string();
  if (fs::is_directory(dest) || (!text.empty() && text.back() == '/')) file = dest / recipe.file.filename();
  if (fs::is_directory(file)) fail(file.string(), ": is a folder, not a recipe file");
  if (fs::exists(file) && !force) fail(file.string(), ": already exists (pass --force to replace it)");
  const auto folder = file.has_parent_path() ? file.parent_path() : fs::path(".");
  fs::create_directories(folder);
  const Recipe loaded = Recipe::load(recipe.file);
  std::ostringstream out;
  for (const auto& line : leading_comment(recipe.file))
    if (!is_marker(line)) out << (line.empty() ? "#" : "# " + line) << "\n";
  out << "#\n# Copied from the shipped recipe '" << recipe.name << "' by `sapling recipe copy`: its base chain is\n"
      << "# resolved into this one file and its relative paths are re-pointed to work from here. Edit freely;\n"
      << "# `sapling recipe check " << file.filename().string() << "` validates it.\n\n"
      << loaded.relocated_text(folder);
  write_file_atomic(file, out.str());
  return file;
}

}  // namespace sapling
