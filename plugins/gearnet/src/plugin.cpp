// Registers the GearNet(-Edge) structure encoder ("gearnet") and its multiview-contrast pretraining objective.
#include "model.hpp"
#include "multiview_contrast.hpp"
#include "sapling/plugin.hpp"    // for SAPLING_PLUGIN
#include "sapling/registry.hpp"  // for Registry

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
      .doc("output width of each relational convolution layer");
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
