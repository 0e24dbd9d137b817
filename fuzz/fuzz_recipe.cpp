// libFuzzer target: TOML recipe loading (base inheritance included) and validation against a settings section,
// its declared (or guessed) kind, and, for a train-tokenizer recipe, the tokenizer-recipe reader of
// `sapling train-tokenizer`.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/recipe.hpp"
#include "sapling/recipe_kind.hpp"
#include "tokenizer_recipe.hpp"

namespace {

// A settings section with one option of every type, standing in for the trainer's sections.
void register_section() {
  sapling::SectionSpec spec{"optim", sapling::SectionKind::Settings, "", {}, "fuzz"};
  spec.schema.add("learning_rate", sapling::OptionType::Float).default_value(1e-4).min(0, true);
  spec.schema.add("ratio", sapling::OptionType::Float).default_value(0.8).min(0, true).max(1);
  spec.schema.add("steps", sapling::OptionType::Int).default_value(int64_t{10}).min(1);
  spec.schema.add("schedule", sapling::OptionType::String).default_value(std::string("cosine")).one_of({"cosine", "linear"});
  spec.schema.add("warmup", sapling::OptionType::Bool).default_value(true);
  spec.schema.add("data", sapling::OptionType::Path).default_value(std::string("data"));
  spec.schema.add("layers", sapling::OptionType::IntList).default_value(std::vector<int64_t>{1});
  spec.schema.add("weights", sapling::OptionType::FloatList).default_value(std::vector<double>{1.0});
  spec.schema.add("names", sapling::OptionType::StringList).default_value(std::vector<std::string>{});
  sapling::register_recipe_section(spec);
}

// A structure tokenizer's registration (schema only: nothing is built), standing in for a plugin's.
void register_tokenizer() {
  sapling::OptionSchema schema;
  schema.add("codes", sapling::OptionType::Int).default_value(int64_t{512}).min(2);
  schema.add("weights", sapling::OptionType::Path);
  schema.add("mask_below", sapling::OptionType::Float).default_value(0.0).min(0).max(100);
  sapling::StructureTokenizerRegistry::instance().add(
      {"fuzz_tokens", "fuzz stand-in", schema, [](const sapling::Options&) -> std::shared_ptr<sapling::StructureTokenizer> {
         return nullptr;
       }});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = [] {
    register_section();
    register_tokenizer();
    auto d = std::filesystem::temp_directory_path() / ("sapling-fuzz-recipe-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    // A base recipe the input may inherit from (base = "base.toml").
    std::ofstream(d / "base.toml") << "[optim]\nsteps = 3\nratio = 0.5\n";
    return d;
  }();
  const auto file = dir / "recipe.toml";
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  try {
    auto recipe = sapling::Recipe::load(file);
    if (sapling::recipe_kind(recipe) == sapling::RecipeKind::TrainTokenizer) {
      sapling::cli::read_tokenizer_recipe(recipe);
      return 0;
    }
    recipe.validate();
    recipe.resolved_text();
    recipe.identity_text();
  } catch (const sapling::Error&) {
  }
  return 0;
}
