// Per-residue fields in training: what a recipe's data provides, and the check that its losses get the fields they
// read (one chain's field by name is compute_field, in the SDK).
#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "sapling/dataset.hpp"
#include "sapling/error.hpp"
#include "sapling/fields.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/internal/training.hpp"
#include "trainer_setup.hpp"

namespace sapling {

namespace {

// The fields the recipe's data provides; nullopt while its dataset does not exist yet.
std::optional<std::set<std::string>> data_fields(const Recipe& recipe, std::string& data_name) {
  const auto data = recipe.settings("data");
  std::set<std::string> fields;
  if (recipe.has_section("structure_tokens")) fields.insert(loss_fields::kStructureTokens);
  if (recipe.has_section("pgnn")) fields.insert(loss_fields::kPgnn);
  if (data.has("sequences")) {
    data_name = "the FASTA file of [data] sequences";
    return fields;
  }
  if (!data.has("dataset") || !std::filesystem::exists(data.get_path("dataset") / "index.json")) return std::nullopt;
  const StructureDataset dataset(data.get_path("dataset"));
  data_name = "the dataset " + dataset.path().string();
  fields.insert({loss_fields::kCoords, loss_fields::kBfactor});
  // Every loaded FieldProvider computes its field from the dataset's structures.
  for (const auto& name : FieldProviderRegistry::instance().names()) fields.insert(name);
  if (dataset.has_tokens()) fields.insert(loss_fields::kStructureTokens);
  if (dataset.has_embeddings()) fields.insert(loss_fields::kPgnn);
  return fields;
}

std::string field_hint(const std::string& field) {
  if (field == loss_fields::kStructureTokens)
    return "prepare the dataset with --tokenizer NAME, or add a [structure_tokens] table";
  if (field == loss_fields::kPgnn) return "prepare the dataset with --pgnn NAME, or add a [pgnn] table";
  if (field == loss_fields::kCoords || field == loss_fields::kBfactor)
    return "a structure dataset ([data] dataset from `sapling prepare`) has it";
  const auto source = field_source(field);
  if (!source.empty()) return "the " + source + " computes it from a structure dataset ([data] dataset from `sapling prepare`)";
  return "neither a built-in data source nor a loaded field provider gives it (`sapling plugins list` shows the "
         "providers; is the plugin that registers it loaded?)";
}

}  // namespace

void check_loss_fields(const Recipe& recipe) {
  std::string data_name;
  const auto available = data_fields(recipe, data_name);
  if (!available) return;
  for (const auto& member : recipe.group_members("losses")) {
    const auto [plugin, options] = recipe.component("losses." + member);
    for (const auto& field : AlignmentLossRegistry::instance().find(plugin).fields) {
      if (available->count(field)) continue;
      std::string provided;
      for (const auto& f : *available) provided += (provided.empty() ? "" : ", ") + f;
      fail(recipe.path().string(), ": [losses.", member, "] (", plugin, ") reads the per-residue field '", field, "', which ",
           data_name, " does not provide (it provides: ", provided.empty() ? "none" : provided, "); ", field_hint(field));
    }
  }
}

namespace training {

// Every field the recipe's losses read beyond the named LossInputs members.
std::set<std::string> extra_loss_fields(const Recipe& recipe) {
  std::set<std::string> out;
  for (const auto& member : recipe.group_members("losses"))
    for (const auto& field : AlignmentLossRegistry::instance().find(recipe.component("losses." + member).first).fields)
      if (field != loss_fields::kStructureTokens && field != loss_fields::kPgnn) out.insert(field);
  return out;
}

}  // namespace training

}  // namespace sapling
