// Plugin descriptor, the SAPLING_PLUGIN macro plugins use, and the loader that finds and loads them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/version.h>  // for TORCH_VERSION, stamped into each plugin

#include "sapling/export.hpp"

// Bumped whenever an interface in sapling/interfaces.hpp changes shape.
#define SAPLING_PLUGIN_API_VERSION 6  // 6: LossContext in the AlignmentLoss factory, StructureVocabulary (structure_vocab.hpp gone), FieldProvider (5: StructureEncoder::embed_batch, LossInputs::segments; 4: tokenizer file rules and training, loss fields, Registration::fields and is_default)

extern "C" {
// What every plugin library exports, through the C function
// `sapling_plugin_descriptor()`. Plain C so the core can read it before
// trusting anything else in the library.
struct SaplingPluginDescriptor {
  uint32_t api_version;       // SAPLING_PLUGIN_API_VERSION the plugin was built with
  const char* torch_version;  // TORCH_VERSION the plugin was built with
  const char* name;           // plugin name, e.g. "esm2"
  const char* description;    // one line
  void (*register_components)();  // registers factories in the core registries
};
}

// Defines a plugin. Use once per plugin library:
//   SAPLING_PLUGIN("my_loss", "A contrastive loss with hard negatives") {
//     sapling::AlignmentLossRegistry::instance().add({...});
//   }
#define SAPLING_PLUGIN(NAME, DESCRIPTION)                                                          \
  static void sapling_plugin_register_();                                                          \
  extern "C" __attribute__((visibility("default"))) const SaplingPluginDescriptor*                 \
  sapling_plugin_descriptor() {                                                                    \
    static const SaplingPluginDescriptor d{SAPLING_PLUGIN_API_VERSION, TORCH_VERSION, NAME,        \
                                           DESCRIPTION, &sapling_plugin_register_};                \
    return &d;                                                                                     \
  }                                                                                                \
  static void sapling_plugin_register_()

namespace sapling {

struct PluginInfo {
  std::string name, description, path, torch_version;
  uint32_t api_version = 0;
};

struct PluginFailure {
  std::string path, reason;
};

// Loads plugin libraries once each and never unloads them (objects a plugin
// creates must not outlive its code). Failures are recorded, not fatal.
class SAPLING_API PluginManager {
 public:
  static PluginManager& instance();

  // Loads one library. Returns false (and records why) if it is not a
  // sapling plugin, was built for another API or LibTorch version, or its
  // registrations clash with loaded ones.
  bool load_file(const std::filesystem::path& path);
  // Loads every shared library in a folder (non-recursive, sorted by name).
  void load_directory(const std::filesystem::path& dir);
  // The standard search path: the build's plugin folder, then
  // SAPLING_PLUGIN_PATH (colon-separated), then `extra` (a recipe's
  // [plugins] paths). Each folder is scanned once.
  void load_search_path(const std::vector<std::filesystem::path>& extra = {});

  const std::vector<PluginInfo>& loaded() const { return loaded_; }
  const std::vector<PluginFailure>& failures() const { return failures_; }
  bool is_loaded(const std::string& plugin_name) const;
  // Folders searched by load_search_path, in order.
  std::vector<std::filesystem::path> search_path(const std::vector<std::filesystem::path>& extra = {}) const;

 private:
  std::vector<PluginInfo> loaded_;
  std::vector<PluginFailure> failures_;
  std::vector<std::string> scanned_;
};

// Folder next to the running executable where the build puts plugins.
SAPLING_API std::filesystem::path default_plugin_dir();

}  // namespace sapling
