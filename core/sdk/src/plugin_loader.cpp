// Finds plugin libraries, checks their descriptor versions, and registers their components.
#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>  // for program_location
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <sstream>

#include "sapling_build_paths.hpp"
#include "sapling/error.hpp"
#include "sapling/plugin.hpp"
#include "sapling/registry.hpp"

namespace sapling {

namespace {

// Libraries are kept here forever: never unloaded, never destroyed at exit
// (a heap object that is deliberately leaked), so plugin code outlives every
// object it created, static destructors included.
std::vector<boost::dll::shared_library>& libraries() {
  static auto* libs = new std::vector<boost::dll::shared_library>();
  return *libs;
}

bool is_shared_library(const std::filesystem::path& p) {
  const auto ext = p.extension().string();
  return ext == ".so" || ext == ".dylib";
}

}  // namespace

PluginManager& PluginManager::instance() {
  static PluginManager manager;
  return manager;
}

bool PluginManager::is_loaded(const std::string& plugin_name) const {
  return std::any_of(loaded_.begin(), loaded_.end(), [&](const PluginInfo& p) { return p.name == plugin_name; });
}

bool PluginManager::load_file(const std::filesystem::path& path) {
  const std::string where = path.string();
  boost::dll::shared_library lib;
  try {
    lib.load(boost::dll::fs::path(where), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_global);
  } catch (const std::exception& e) {
    failures_.push_back({where, std::string("cannot load library: ") + e.what()});
    return false;
  }
  if (!lib.has("sapling_plugin_descriptor")) {
    failures_.push_back({where, "not a sapling plugin (no sapling_plugin_descriptor symbol)"});
    return false;  // the library stays mapped by the OS until exit; harmless
  }
  const auto* descriptor = lib.get<const SaplingPluginDescriptor*()>("sapling_plugin_descriptor")();
  if (!descriptor || !descriptor->name || !descriptor->register_components) {
    failures_.push_back({where, "malformed plugin descriptor"});
    return false;
  }
  const std::string name = descriptor->name;
  if (descriptor->api_version != SAPLING_PLUGIN_API_VERSION) {
    std::ostringstream os;
    os << "plugin '" << name << "' was built for plugin API version " << descriptor->api_version
       << ", this sapling has version " << SAPLING_PLUGIN_API_VERSION << "; rebuild the plugin";
    failures_.push_back({where, os.str()});
    return false;
  }
  const std::string torch_version = descriptor->torch_version ? descriptor->torch_version : "?";
  if (torch_version != TORCH_VERSION) {
    failures_.push_back({where, "plugin '" + name + "' was built with LibTorch " + torch_version +
                                    ", this sapling uses LibTorch " + TORCH_VERSION + "; rebuild the plugin"});
    return false;
  }
  for (const auto& p : loaded_)
    if (p.name == name) {
      failures_.push_back({where, "plugin '" + name + "' is already loaded from " + p.path + "; this copy is ignored"});
      return false;
    }
  // Register; on a clash undo this plugin's registrations so none is half-loaded.
  auto& log = RegistrationLog::items();
  const size_t before = log.size();
  RegistrationLog::current_plugin() = name;
  try {
    descriptor->register_components();
  } catch (const std::exception& e) {
    for (size_t i = log.size(); i > before; --i)
      if (log[i - 1].undo) log[i - 1].undo();
    log.resize(before);
    RegistrationLog::current_plugin() = "core";
    failures_.push_back({where, std::string("registration failed: ") + e.what()});
    return false;
  }
  RegistrationLog::current_plugin() = "core";
  loaded_.push_back({name, descriptor->description ? descriptor->description : "", where, torch_version,
                     descriptor->api_version});
  libraries().push_back(std::move(lib));
  return true;
}

void PluginManager::load_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(dir, ec).string();
  if (std::find(scanned_.begin(), scanned_.end(), canonical) != scanned_.end()) return;
  scanned_.push_back(canonical);
  if (!std::filesystem::is_directory(dir, ec)) return;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_regular_file() && is_shared_library(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load_file(f);
}

std::vector<std::filesystem::path> PluginManager::search_path(const std::vector<std::filesystem::path>& extra) const {
  // Most specific first: a plugin author's build (named by a recipe, --plugin-path or SAPLING_PLUGIN_PATH) wins
  // over a copy of the same plugin installed beside sapling, which is then reported as ignored.
  std::vector<std::filesystem::path> dirs(extra.begin(), extra.end());
  if (const char* env = std::getenv("SAPLING_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) dirs.emplace_back(item);
  }
  dirs.push_back(default_plugin_dir());
  return dirs;
}

void PluginManager::load_search_path(const std::vector<std::filesystem::path>& extra) {
  for (const auto& dir : search_path(extra)) load_directory(dir);
}

std::filesystem::path default_plugin_dir() {
  // build/sapling -> build/plugins; an installed bin/sapling -> lib/sapling/plugins.
  std::error_code ec;
  const std::filesystem::path exe = boost::dll::program_location(ec).string();
  const auto here = exe.parent_path();
  if (std::filesystem::is_directory(here / "plugins")) return here / "plugins";
  if (std::filesystem::is_directory(here.parent_path() / "lib" / "sapling" / "plugins"))
    return here.parent_path() / "lib" / "sapling" / "plugins";
#ifdef SAPLING_BUILD_PLUGIN_DIR  // sapling_build_paths.hpp
  return SAPLING_BUILD_PLUGIN_DIR;  // tests run from build/tests
#else
  return here / "plugins";
#endif
}

}  // namespace sapling
