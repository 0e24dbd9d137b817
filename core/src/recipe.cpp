// Recipe loading (base inheritance, --set overrides) and validation against sections and plugin schemas.
#include "sapling/recipe.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/log.hpp"
#include "sapling/internal/toml_location.hpp"
#include "sapling/internal/toml_text.hpp"
#include "sapling/internal/training.hpp"

namespace sapling {

namespace {

std::vector<SectionSpec>& sections() {
  static std::vector<SectionSpec> specs = [] {
    std::vector<SectionSpec> s;
    SectionSpec plugins{"plugins", SectionKind::Settings, "", {}, "extra plugin folders"};
    plugins.schema.add("paths", OptionType::StringList)
        .default_value(std::vector<std::string>{})
        .doc("folders searched for plugin libraries after the build folder and SAPLING_PLUGIN_PATH");
    s.push_back(std::move(plugins));
    s.push_back({"model", SectionKind::Component, SequenceEncoder::kind, {}, "the protein language model to train or use"});
    s.push_back({"reference_model", SectionKind::Component, SequenceEncoder::kind, {},
                 "frozen reference pLM for excess-loss residue selection"});
    s.push_back({"pgnn", SectionKind::Component, StructureEncoder::kind, {}, "the structure encoder (pGNN)"});
    s.push_back({"structure_tokens", SectionKind::Component, StructureTokenizer::kind, {}, "the structure tokenizer"});
    s.push_back({"losses", SectionKind::ComponentGroup, AlignmentLoss::kind, {}, "the training losses, one table each"});
    s.push_back({"selector", SectionKind::Component, ResidueSelector::kind, {}, "residue loss selection"});
    for (auto& spec : training_sections()) s.push_back(std::move(spec));
    return s;
  }();
  return specs;
}

const SectionSpec* find_section(const std::string& name) {
  for (const auto& s : sections())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const auto& s : sections()) out.push_back(s.name);
  return out;
}

std::string where(const toml::node& node) { return toml_location(node.source()); }

// Schema lookup for a component plugin of a given registry kind.
const OptionSchema* component_schema(const std::string& kind, const std::string& plugin,
                                     std::vector<std::string>& available) {
  auto lookup = [&](auto& registry) -> const OptionSchema* {
    available = registry.names();
    if (!registry.contains(plugin)) return nullptr;
    return &registry.find(plugin).schema;
  };
  if (kind == SequenceEncoder::kind) return lookup(SequenceEncoderRegistry::instance());
  if (kind == StructureEncoder::kind) return lookup(StructureEncoderRegistry::instance());
  if (kind == StructureTokenizer::kind) return lookup(StructureTokenizerRegistry::instance());
  if (kind == AlignmentLoss::kind) return lookup(AlignmentLossRegistry::instance());
  if (kind == ResidueSelector::kind) return lookup(ResidueSelectorRegistry::instance());
  fail("internal: unknown registry kind '", kind, "'");
}

// A component table that names another component than its base replaces the
// base table: options belong to a component, so the base's would not fit.
bool switches_component(const toml::table& base, const toml::table& child) {
  const auto* a = base.get(kComponentKey);
  const auto* b = child.get(kComponentKey);
  return a && b && a->value<std::string>() != b->value<std::string>();
}

// Moves the value under `from` to `to` (moved, not copied: the value keeps its source region for messages).
void rename_key(toml::table& table, const char* from, const char* to) {
  auto* value = table.get(from);
  if (!value) return;
  table.insert_or_assign(to, std::move(*value));
  table.erase(from);
}

// Calls `visit` on every table that can be a component: each section, and each member of a group ([losses.mlm]).
template <typename Visit>
void for_each_component_table(toml::table& recipe, Visit&& visit) {
  for (auto&& [key, node] : recipe) {
    if (!node.is_table()) continue;
    visit(*node.as_table());
    for (auto&& [member_key, member] : *node.as_table())
      if (member.is_table()) visit(*member.as_table());
  }
}

// Every component table of one recipe file written with the old key: renamed, and one warning for the file.
// Both keys in one table is an error: which one was meant cannot be guessed.
void adopt_legacy_component_keys(toml::table& file_table, const std::string& file) {
  std::vector<int> lines;
  for_each_component_table(file_table, [&](toml::table& table) {
    const auto* legacy = table.get(kLegacyComponentKey);
    if (!legacy) return;
    if (table.contains(kComponentKey))
      fail(where(*legacy), ": both 'component' and its old name 'plugin' are set; keep 'component'");
    lines.push_back(static_cast<int>(legacy->source().begin.line));
    rename_key(table, kLegacyComponentKey, kComponentKey);
  });
  if (lines.empty()) return;
  // A recipe is often loaded more than once per run (check, then train): warn once per file.
  static std::mutex mutex;
  static std::set<std::string> warned;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!warned.insert(file).second) return;
  }
  std::sort(lines.begin(), lines.end());
  std::string list;
  for (int line : lines) list += (list.empty() ? "" : ", ") + std::to_string(line);
  warn(file, ": key 'plugin' (line", lines.size() > 1 ? "s " : " ", list,
       ") is now called 'component'; sapling 0.2 still reads the old name, the next release will not "
       "(`sapling recipe copy` writes the new one)");
}

// Child values override base values; tables merge recursively. Nodes are
// moved, never copied: toml++ keeps a node's source region (file:line) only
// across moves, and every error message needs it.
void merge_into(toml::table& base, toml::table& child) {
  for (auto&& [key, node] : child) {
    auto* existing = base.get(key);
    if (existing && existing->is_table() && node.is_table() && !switches_component(*existing->as_table(), *node.as_table())) {
      merge_into(*existing->as_table(), *node.as_table());
    } else {
      base.insert_or_assign(key, std::move(node));
    }
  }
}

toml::table load_with_bases(const std::filesystem::path& file, std::vector<std::string>& chain) {
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(file, ec).string();
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
    std::string cycle;
    for (const auto& c : chain) cycle += c + " -> ";
    fail(file.string(), ": recipe inheritance cycle: ", cycle, canonical);
  }
  // The error_code form: a name the file system refuses (too long, say) is "does not exist", not an exception.
  if (!std::filesystem::is_regular_file(file, ec)) {
    if (chain.empty()) fail(file.string(), ": no such recipe file");
    fail(chain.back(), ": base recipe '", file.string(), "' does not exist", ec ? " (" + ec.message() + ")" : "");
  }
  chain.push_back(canonical);
  toml::table table;
  try {
    table = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << file.string() << ":" << e.source().begin.line << ":" << e.source().begin.column << ": TOML syntax error: "
       << e.description();
    throw Error(os.str());
  }
  adopt_legacy_component_keys(table, file.lexically_normal().string());
  if (auto* base = table.get("base")) {
    // One base, or several merged in order: e.g. an ablation, then the scale of a reproduction on top.
    std::vector<std::string> bases;
    if (base->is_string()) bases.push_back(base->value<std::string>().value());
    if (auto* list = base->as_array()) {
      for (const auto& element : *list) {
        if (!element.is_string()) fail(where(element), ": key 'base': expected a path string or a list of them");
        bases.push_back(element.value<std::string>().value());
      }
      if (bases.empty()) fail(where(*base), ": key 'base': the list is empty");
    }
    if (bases.empty()) fail(where(*base), ": key 'base': expected a path string or a list of them");
    toml::table merged;
    for (const auto& name : bases) {
      toml::table next = load_with_bases(file.parent_path() / name, chain);
      merge_into(merged, next);
    }
    table.erase("base");
    merge_into(merged, table);
    table = std::move(merged);
  }
  chain.pop_back();
  return table;
}

void apply_override(toml::table& table, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail("--set '", text, "': expected table.key=value");
  const std::string dotted = text.substr(0, eq);
  const std::string value_text = text.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (part.empty()) fail("--set '", text, "': empty name in '", dotted, "'");
    parts.push_back(part);
  }
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value_text, std::string_view("command line"));
  } catch (const toml::parse_error&) {
    // Not TOML: take the text literally as a string (paths, names).
    toml::table quoted;
    quoted.insert("v", value_text);
    parsed = std::move(quoted);
  }
  if (parts.size() >= 2 && parts.back() == kLegacyComponentKey) {
    warn("--set ", dotted, ": key 'plugin' is now called 'component'; sapling 0.2 still reads the old name, "
         "the next release will not");
    parts.back() = kComponentKey;
  }
  toml::table* cur = &table;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto* next = cur->get(parts[i]);
    if (!next) {
      cur->insert(parts[i], toml::table{});
      next = cur->get(parts[i]);
    }
    if (!next->is_table()) fail("--set ", dotted, ": '", parts[i], "' is not a table");
    cur = next->as_table();
  }
  // `--set selector.component=own_loss` swaps the component, as a base does: the old component's options go
  // with it (they would not fit the new one's schema), and later --set values give the new one's.
  if (parts.size() >= 2 && parts.back() == kComponentKey) {
    const auto* old_component = cur->get(kComponentKey);
    if (old_component && old_component->value<std::string>() != parsed.get("v")->value<std::string>()) cur->clear();
  }
  // Moved, not copied, so the value keeps its "command line" source region.
  cur->insert_or_assign(parts.back(), std::move(*parsed.get("v")));
}

}  // namespace

void register_recipe_section(SectionSpec spec) {
  for (auto& s : sections())
    if (s.name == spec.name) {
      s = std::move(spec);
      return;
    }
  sections().push_back(std::move(spec));
}

const std::vector<SectionSpec>& recipe_sections() { return sections(); }

Recipe Recipe::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  Recipe r;
  r.path_ = file;
  std::vector<std::string> chain;
  r.table_ = load_with_bases(file, chain);
  for (const auto& o : overrides) apply_override(r.table_, o);
  return r;
}

bool Recipe::has_section(const std::string& name) const { return table_.contains(name); }

std::vector<std::filesystem::path> Recipe::plugin_paths() const {
  std::vector<std::filesystem::path> out;
  if (!has_section("plugins")) return out;
  const Options opts = settings("plugins");
  const auto* node = table_["plugins"]["paths"].node();
  for (const auto& p : opts.get_string_list("paths")) {
    std::filesystem::path path(p);
    if (path.is_relative() && node && node->source().path && *node->source().path != "command line")
      path = std::filesystem::path(*node->source().path).parent_path() / path;
    out.push_back(path);
  }
  return out;
}

Options Recipe::settings(const std::string& section) const {
  const SectionSpec* spec = find_section(section);
  if (!spec || spec->kind != SectionKind::Settings) fail("internal: '", section, "' is not a settings section");
  const auto* node = table_.get(section);
  if (!node) return Options::defaults(spec->schema, section);
  if (!node->is_table()) fail(where(*node), ": '", section, "' must be a table");
  return Options::from_toml(*node->as_table(), spec->schema, section, {});
}

std::pair<std::string, Options> Recipe::component(const std::string& name) const {
  const auto dot = name.find('.');
  const std::string section = name.substr(0, dot);
  const SectionSpec* spec = find_section(section);
  if (!spec || spec->kind == SectionKind::Settings) fail("internal: '", section, "' is not a component section");
  const toml::node* node = table_.get(section);
  if (node && dot != std::string::npos) node = node->is_table() ? node->as_table()->get(name.substr(dot + 1)) : nullptr;
  if (!node) fail(path_.string(), ": recipe has no [", name, "] table");
  if (!node->is_table()) fail(where(*node), ": [", name, "] must be a table");
  const auto& table = *node->as_table();
  const auto* name_node = table.get(kComponentKey);
  if (!name_node) fail(where(*node), ": [", name, "] needs a key 'component' naming a ", spec->registry_kind);
  if (!name_node->is_string()) fail(where(*name_node), ": [", name, "] key 'component': expected a string");
  const std::string component = name_node->value<std::string>().value();
  std::vector<std::string> available;
  const OptionSchema* schema = component_schema(spec->registry_kind, component, available);
  if (!schema) {
    std::string list;
    for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
    fail(where(*name_node), ": [", name, "] key 'component': no ", spec->registry_kind, " named '", component, "'",
         did_you_mean(component, available), " (available: ", list.empty() ? "none; is its plugin built?" : list, ")");
  }
  return {component, Options::from_toml(table, *schema, name, {kComponentKey})};
}

std::vector<std::string> Recipe::group_members(const std::string& section) const {
  std::vector<std::string> out;
  const auto* node = table_.get(section);
  if (!node || !node->is_table()) return out;
  for (const auto& [key, value] : *node->as_table()) out.emplace_back(key.str());
  return out;
}

void Recipe::validate() const {
  for (const auto& [key, node] : table_) {
    const std::string name(key.str());
    const SectionSpec* spec = find_section(name);
    if (!spec)
      fail(where(node), ": unknown section '", name, "'", did_you_mean(name, section_names()));
    if (!node.is_table()) fail(where(node), ": '", name, "' must be a table");
    switch (spec->kind) {
      case SectionKind::Settings:
        settings(name);
        // A misspelt plugin folder would otherwise surface later as "no such plugin".
        if (name == "plugins")
          for (const auto& dir : plugin_paths())
            if (!std::filesystem::is_directory(dir))
              fail(where(*node.as_table()->get("paths")), ": [plugins] key 'paths': folder '", dir.string(),
                   "' does not exist");
        break;
      case SectionKind::Component: component(name); break;
      case SectionKind::ComponentGroup:
        for (const auto& member : group_members(name)) component(name + "." + member);
        break;
    }
  }
}

std::string Recipe::resolved_text() const { return format_toml(table_); }

std::string Recipe::identity_text() const {
  // Keyed by the old name, so that digests taken before the rename still match.
  toml::table legacy = table_;
  for_each_component_table(legacy, [](toml::table& table) { rename_key(table, kComponentKey, kLegacyComponentKey); });
  std::ostringstream os;
  os << toml::toml_formatter(legacy);
  return os.str();
}

namespace {

// `value`, relative to the file `source` that set it, as seen from folder `to`.
std::string repoint(const std::string& value, const toml::source_region& source, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  const fs::path path(value);
  if (value.empty() || path.is_absolute() || !source.path || *source.path == "command line") return value;
  const auto target = fs::weakly_canonical(fs::absolute(fs::path(*source.path).parent_path() / path));
  const auto from = fs::weakly_canonical(fs::absolute(to));
  const auto relative = target.lexically_relative(from);
  // Relative while the copy sits near its inputs (it moves with them); absolute when it would climb far.
  int climbs = 0;
  for (const auto& part : relative) climbs += part == "..";
  return relative.empty() || climbs > 2 ? target.string() : relative.string();
}

}  // namespace

std::string Recipe::relocated_text(const std::filesystem::path& dir) const {
  // toml++ drops source regions when copying, and each relative path needs the file that set it: the
  // paths are read from the original (which keeps them) and written into the copy, walking both in step.
  toml::table copy = table_;
  for (auto&& [section_key, section_node] : table_) {
    const std::string section(section_key.str());
    const SectionSpec* spec = find_section(section);
    if (!spec || !section_node.is_table()) continue;
    auto* target_section = copy.get(section_key.str())->as_table();
    auto relocate = [&](const toml::table& original, toml::table& target, const OptionSchema& schema) {
      for (auto&& [key, node] : original) {
        const OptionSpec* option = schema.find(std::string(key.str()));
        if (!option) continue;
        if (option->type == OptionType::Path && node.is_string())
          target.insert_or_assign(key.str(), repoint(node.as_string()->get(), node.source(), dir));
        else if (option->type == OptionType::StringList && section == "plugins" && node.is_array()) {
          toml::array paths;
          for (const auto& element : *node.as_array())
            if (element.is_string()) paths.push_back(repoint(element.as_string()->get(), node.source(), dir));
          target.insert_or_assign(key.str(), std::move(paths));
        }
      }
    };
    const auto& original = *section_node.as_table();
    auto component = [&](const toml::table& table, toml::table& target, const std::string& name) {
      const auto* component_name = table.get(kComponentKey);
      if (!component_name || !component_name->is_string()) return;
      const std::string named = component_name->value<std::string>().value();
      std::vector<std::string> available;
      const OptionSchema* schema = component_schema(spec->registry_kind, named, available);
      if (!schema) {
        warn("[", name, "] component '", named, "' is not loaded: its relative paths are copied as written");
        return;
      }
      relocate(table, target, *schema);
    };
    switch (spec->kind) {
      case SectionKind::Settings: relocate(original, *target_section, spec->schema); break;
      case SectionKind::Component: component(original, *target_section, section); break;
      case SectionKind::ComponentGroup:
        for (auto&& [member, node] : original)
          if (node.is_table())
            component(*node.as_table(), *target_section->get(member.str())->as_table(), section + "." + std::string(member.str()));
        break;
    }
  }
  return format_toml(copy);
}

}  // namespace sapling
