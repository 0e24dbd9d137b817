// Registers the GearNet(-Edge) structure encoder ("gearnet") and its multiview-contrast pretraining objective.
#include "model.hpp"
#include "multiview_contrast.hpp"
#include "sapling/plugin.hpp"    // for SAPLING_PLUGIN
#include "sapling/registry.hpp"  // for Registry
#include "sapling/log.hpp"          // for info
#include "sapling/safetensors.hpp"  // for TensorStore

namespace {

using sapling::OptionType;

sapling::OptionSchema gearnet_schema() {
  sapling::OptionSchema s;
  s.add("weights", OptionType::Path)
      .existing()
      .doc("safetensors file with the converted torchdrug state dict (scripts/convert_torchdrug_gearnet.py); "
           "random initialisation if absent");
  s.add("hidden_dims", OptionType::IntList)
      .default_value(std::vector<int64_t>(6, 512))
      .doc("output width of each relational convolution layer (with `weights`: the file's, unless given)");
  s.add("edge_feature", OptionType::Bool).default_value(true).doc("true: GearNet-Edge (line-graph branch); false: plain GearNet");
  s.add("output", OptionType::String)
      .default_value(std::string("concat"))
      .doc("per-residue embedding: \"concat\" (all layers), \"last\", or a layer index (negative counts from the end)");
  s.add("num_angle_bins", OptionType::Int).default_value(int64_t{8}).min(1).doc("line-graph relations (angle bins)");
  s.add("radius", OptionType::Float).default_value(10.0).min(0, true).doc("radius edges: CA-CA distance below this (Angstrom)");
  s.add("knn", OptionType::Int).default_value(int64_t{10}).min(0).doc("KNN edges: nearest neighbours per residue");
  s.add("max_radius_neighbors", OptionType::Int)
      .default_value(int64_t{32})
      .min(0)
      .doc("radius edges: at most this many neighbours per residue (first in residue order, counted before the "
           "sequence-separation filter)");
  s.add("min_sequence_separation", OptionType::Int)
      .default_value(int64_t{5})
      .min(0)
      .doc("radius and KNN edges need |i - j| >= this");
  return s;
}

// The architecture a weights file holds, read from its tensor shapes:
// layers.{i}.self_loop.weight is [hidden_dims[i], in]; edge_layers.* exist
// only for GearNet-Edge; edge_layers.0.linear.weight is [out, bins x in].
struct StoredShape {
  std::vector<int64_t> hidden_dims;
  bool edge_feature = false;
  int64_t num_angle_bins = 0;
};

StoredShape shape_of_weights(const std::filesystem::path& file) {
  const sapling::TensorStore store(file);
  StoredShape shape;
  for (int64_t i = 0;; ++i) {
    const std::string key = "layers." + std::to_string(i) + ".self_loop.weight";
    if (!store.contains(key)) break;
    shape.hidden_dims.push_back(store.entry(key).shape.at(0));
  }
  shape.edge_feature = store.contains("edge_layers.0.self_loop.weight");
  if (shape.edge_feature && store.contains("edge_layers.0.linear.weight")) {
    const int64_t in = store.entry("edge_layers.0.self_loop.weight").shape.at(1);
    shape.num_angle_bins = in > 0 ? store.entry("edge_layers.0.linear.weight").shape.at(1) / in : 0;
  }
  return shape;
}

std::string list_text(const std::vector<int64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out + "]";
}

// Options the user left at their defaults take the weights file's values (and
// say so); an option set to something else contradicts the file: an error naming both.
void take_shape_from_weights(const sapling::Options& o, sapling::gearnet::GearNetOptions& options) {
  const auto file = o.get_path("weights");
  const StoredShape stored = shape_of_weights(file);
  if (stored.hidden_dims.empty()) return;  // not GearNet weights: load_weights names what is missing
  const std::string where = o.section().empty() ? "gearnet" : "[" + o.section() + "]";
  std::vector<std::string> taken;
  auto settle = [&](const std::string& key, const std::string& given, const std::string& in_file, bool is_default,
                    auto apply) {
    if (given == in_file) return;
    if (!is_default)
      sapling::fail(where, ": ", key, " = ", given, " (", o.origin(key), ") contradicts the weights ", file.string(),
                    ", which hold ", key, " = ", in_file, "; remove the option or give weights of that shape");
    apply();
    taken.push_back(key + " = " + in_file);
  };
  settle("hidden_dims", list_text(options.hidden_dims), list_text(stored.hidden_dims), o.origin("hidden_dims") == "default",
         [&] { options.hidden_dims = stored.hidden_dims; });
  settle("edge_feature", options.edge_feature ? "true" : "false", stored.edge_feature ? "true" : "false",
         o.origin("edge_feature") == "default", [&] { options.edge_feature = stored.edge_feature; });
  if (stored.edge_feature && stored.num_angle_bins > 0)
    settle("num_angle_bins", std::to_string(options.graph.num_angle_bins), std::to_string(stored.num_angle_bins),
           o.origin("num_angle_bins") == "default", [&] { options.graph.num_angle_bins = stored.num_angle_bins; });
  if (!taken.empty()) {
    std::string text;
    for (const auto& t : taken) text += (text.empty() ? "" : ", ") + t;
    sapling::info(where, ": ", text, " from the weights ", file.filename().string());
  }
}

std::shared_ptr<sapling::StructureEncoder> make_gearnet(const sapling::Options& o) {
  sapling::gearnet::GearNetOptions options;
  options.hidden_dims = o.get_int_list("hidden_dims");
  options.edge_feature = o.get_bool("edge_feature");
  options.output = o.get_string("output");
  options.graph.num_angle_bins = o.get_int("num_angle_bins");
  options.graph.radius = o.get_float("radius");
  options.graph.knn = o.get_int("knn");
  options.graph.max_radius_neighbors = o.get_int("max_radius_neighbors");
  options.graph.min_sequence_separation = o.get_int("min_sequence_separation");
  if (o.has("weights")) take_shape_from_weights(o, options);
  std::shared_ptr<sapling::gearnet::GearNetEncoder> model;
  try {
    model = std::make_shared<sapling::gearnet::GearNetEncoder>(options);
  } catch (const sapling::Error&) {
    if (o.section().empty()) throw;
    sapling::rethrow_with_context("[" + o.section() + "]");
  }
  if (o.has("weights")) model->load_weights(o.get_path("weights"));
  // Built for embedding: evaluation mode (batch norm uses running statistics).
  // Call train() to train it.
  model->eval();
  return model;
}

sapling::OptionSchema contrast_schema() {
  const sapling::gearnet::ContrastOptions d;
  sapling::OptionSchema s;
  s.add("subsequence_length", OptionType::Int).default_value(d.subsequence_length).min(1)
      .doc("subsequence crop: residues (with a CA) in the window");
  s.add("subspace_radius", OptionType::Float).default_value(d.subspace_radius).min(0, true)
      .doc("subspace crop: residues within this CA distance of a random centre (Angstrom)");
  s.add("subspace_min_neighbors", OptionType::Int).default_value(d.subspace_min_neighbors).min(1)
      .doc("subspace crop: at least this many nearest residues (centre included)");
  s.add("edge_mask_rate", OptionType::Float).default_value(d.edge_mask_rate).min(0).max(1, true)
      .doc("random edge mask noise: fraction of edges removed");
  s.add("temperature", OptionType::Float).default_value(d.temperature).min(0, true).doc("InfoNCE temperature");
  return s;
}

std::shared_ptr<sapling::StructurePretrainingObjective> make_contrast(const sapling::Options& o) {
  sapling::gearnet::ContrastOptions options;
  options.subsequence_length = o.get_int("subsequence_length");
  options.subspace_radius = o.get_float("subspace_radius");
  options.subspace_min_neighbors = o.get_int("subspace_min_neighbors");
  options.edge_mask_rate = o.get_float("edge_mask_rate");
  options.temperature = o.get_float("temperature");
  return std::make_shared<sapling::gearnet::MultiviewContrast>(options);
}

}  // namespace

SAPLING_PLUGIN("gearnet", "GearNet / GearNet-Edge protein structure encoder (torchdrug-compatible weights)") {
  // Both are the published choice, so commands that need one and are given none use them.
  sapling::Registration<sapling::StructureEncoder> encoder{
      "gearnet", "GearNet-Edge residue-graph encoder: per-residue embeddings (concat of 6 x 512 by default)",
      gearnet_schema(), make_gearnet};
  encoder.is_default = true;
  sapling::StructureEncoderRegistry::instance().add(std::move(encoder));
  sapling::Registration<sapling::StructurePretrainingObjective> objective{
      "gearnet_multiview_contrast",
      "GearNet multiview contrast: subsequence/subspace crops, 15% edge masking, 2-layer MLP, InfoNCE (tau 0.07)",
      contrast_schema(), make_contrast};
  objective.is_default = true;
  sapling::StructurePretrainingRegistry::instance().add(std::move(objective));
}
