// Name-keyed factory registries: one per extension interface, shared by the core and every plugin.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sapling/error.hpp"
#include "sapling/options.hpp"

namespace sapling {

// The factory a registration holds: built from its options. An interface whose
// components also need facts from the run (an alignment loss: the model's
// width, the data's vocabulary) specialises this to take them (interfaces.hpp).
template <typename Interface>
struct FactoryOf {
  using type = std::function<std::shared_ptr<Interface>(const Options&)>;
};

// What a plugin registers under a name: a description, the option schema a
// recipe is validated against (without building anything), and the factory.
template <typename Interface>
struct Registration {
  using Factory = typename FactoryOf<Interface>::type;
  std::string name;
  std::string description;
  OptionSchema schema;
  Factory factory;
  std::string plugin;  // filled in by the loader: which plugin registered it
  // Sequence encoders: the Hugging Face config.json `model_type` values this
  // component loads (compared case-insensitively), and an optional test for
  // folders without one (e.g. AMPLIFY's original config.yaml). Used by
  // detect_sequence_encoder so that the core names no model family.
  std::vector<std::string> model_types;
  std::function<bool(const std::filesystem::path& dir)> recognizes;
  // The component a command uses when none is named (`tokens --tokenizer`,
  // `pretrain-pgnn --encoder`): at most one per kind should set it.
  bool is_default = false;
  // Alignment losses: the per-residue fields the loss reads (names in
  // interfaces.hpp, loss_fields). `sapling recipe check` and the trainer
  // refuse data that lacks one, naming the field and the loss.
  std::vector<std::string> fields;
};

// Records every registration across interfaces (for `sapling plugins list`)
// and attributes it to the plugin being loaded.
struct SAPLING_API RegistrationLog {
  struct Item {
    std::string kind, name, plugin;
    std::function<void()> undo;  // removes the registration (used when a plugin fails half-way)
  };
  static std::vector<Item>& items();
  static std::string& current_plugin();  // set by the loader around a plugin's register call
};

template <typename Interface>
class SAPLING_API Registry {
 public:
  using Entry = Registration<Interface>;

  static Registry& instance();

  void add(Entry entry) {
    entry.plugin = RegistrationLog::current_plugin();
    auto it = entries_.find(entry.name);
    if (it != entries_.end())
      fail(Interface::kind, " '", entry.name, "' is registered twice: by plugin '", it->second.plugin,
           "' and by plugin '", entry.plugin, "'");
    const std::string name = entry.name;
    RegistrationLog::items().push_back({Interface::kind, name, entry.plugin, [this, name] { entries_.erase(name); }});
    entries_.emplace(entry.name, std::move(entry));
  }

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  const Entry& find(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end())
      fail("no ", Interface::kind, " named '", name, "'", did_you_mean(name, names()),
           "; `sapling plugins list` shows what is available");
    return it->second;
  }

  // create(name, options), or create(name, options, context) where the factory takes a context.
  template <typename... Context>
  std::shared_ptr<Interface> create(const std::string& name, const Options& options, const Context&... context) const {
    return find(name).factory(options, context...);
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }

  // Name of the registration marked is_default; fails, naming `what` (the
  // command-line flag to set instead), when none or several are.
  std::string default_name(const std::string& what) const {
    std::vector<std::string> marked;
    for (const auto& kv : entries_)
      if (kv.second.is_default) marked.push_back(kv.first);
    if (marked.size() != 1)
      fail("no default ", Interface::kind, " (", marked.empty() ? "none" : "several", " of the loaded plugins marks one): set ",
           what, "; `sapling plugins list` shows what is available");
    return marked.front();
  }

  const std::map<std::string, Entry>& entries() const { return entries_; }
  void remove(const std::string& name) { entries_.erase(name); }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace sapling
