// TOML recipes: loading with `base` inheritance and --set overrides, and strict validation of every section.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/options.hpp"

namespace sapling {

// How a top-level recipe table is interpreted.
enum class SectionKind {
  Settings,        // core settings validated against a fixed schema, e.g. [plugins], [optim]
  Component,       // one component: `component = "name"` picks a factory of `registry_kind`
  ComponentGroup,  // a table of named components, e.g. [losses.mlm], [losses.contrastive]
};

struct SectionSpec {
  std::string name;
  SectionKind kind = SectionKind::Settings;
  std::string registry_kind;  // "sequence_encoder", ... for components
  OptionSchema schema;        // for Settings
  std::string help;
};

// The key of a component table naming its registry entry, and its name in sapling 0.1 ("plugin", which
// also means a library): sapling 0.2 still reads the old name in recipes and --set overrides, with one
// warning per file; the release after drops it.
inline constexpr const char* kComponentKey = "component";
inline constexpr const char* kLegacyComponentKey = "plugin";

// Sections known to recipes. The core registers [plugins] and the component
// sections; subsystems (trainer, evaluation) register theirs.
SAPLING_API void register_recipe_section(SectionSpec spec);
SAPLING_API const std::vector<SectionSpec>& recipe_sections();

// Move-only: toml++ drops source positions when nodes are copied.
class SAPLING_API Recipe {
 public:
  Recipe() = default;
  Recipe(Recipe&&) = default;
  Recipe& operator=(Recipe&&) = default;
  Recipe(const Recipe&) = delete;
  Recipe& operator=(const Recipe&) = delete;

  // Reads `file`, resolves `base = "..."` or `base = ["a.toml", "b.toml"]` (relative to the file, merged in
  // order, later wins, then the file itself; cycles rejected; tables merge key by key, except that a component
  // table naming another `component` than its base replaces it whole), then applies overrides of the form
  // "table.key=value" (value parsed as TOML, else taken as a string).
  static Recipe load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});

  const std::filesystem::path& path() const { return path_; }
  const toml::table& table() const { return table_; }
  bool has_section(const std::string& name) const;

  // Folders named in [plugins] paths, resolved relative to the recipe.
  std::vector<std::filesystem::path> plugin_paths() const;

  // Checks every section and key against the registered sections and the
  // loaded plugins' schemas. Builds no tensors. Throws the first error.
  void validate() const;

  // A Settings section's validated options (defaults if the table is absent).
  Options settings(const std::string& section) const;
  // A component section: its registry name (the `component` key) and validated options. `name` may
  // be "losses.mlm" for a member of a group.
  std::pair<std::string, Options> component(const std::string& name) const;
  // Member names of a group section ("contrastive", "mlm", ...), in alphabetical order
  // (toml++ keeps tables sorted).
  std::vector<std::string> group_members(const std::string& section) const;

  // The fully resolved recipe as TOML text (floats as a person writes them: 0.07).
  std::string resolved_text() const;
  // The same in toml++'s own rendering (17 significant digits per float), with
  // component tables keyed by the old name `plugin`: the stable identity that
  // resume digests and bench caches are keyed on, so that runs and caches made
  // before resolved_text() or the key's name changed stay valid.
  std::string identity_text() const;

  // resolved_text() for a recipe file that will live in `dir`: every relative
  // path option (the schemas' Path options, [plugins] paths) re-pointed so it
  // names the same file from there. Component options are known only for
  // loaded plugins; those of others are left as written (with a warning).
  // `missing` (when given) receives "[section] key = path" for each re-pointed
  // path that names nothing (e.g. models a shipped recipe expects beside it).
  std::string relocated_text(const std::filesystem::path& dir, std::vector<std::string>* missing = nullptr) const;

 private:
  std::filesystem::path path_;
  toml::table table_;
};

}  // namespace sapling
