// Multiview contrast for GearNet: two cropped, edge-masked views per chain, sum readout, MLP, InfoNCE over the batch.
#include "multiview_contrast.hpp"

#include <algorithm>

#include "sapling/error.hpp"

namespace sapling::gearnet {

namespace {

// Uniform integer in [0, n).
int64_t draw_below(int64_t n, at::Generator& generator) {
  return torch::randint(n, {1}, generator, torch::kInt64).item<int64_t>();
}

}  // namespace

ChainNodes chain_nodes(const ChainStructure& chain) {
  // The graph builder's own node selection (residues with a CA), without edges.
  const ResidueGraph g = build_residue_graph(chain, GraphOptions{});
  return {g.positions, g.residue_type};
}

torch::Tensor subsequence_crop(int64_t num_nodes, int64_t length, at::Generator& generator) {
  if (length < 1) fail("gearnet pretraining: subsequence_length must be >= 1, got ", length);
  const int64_t kept = std::min(length, num_nodes);
  const int64_t start = num_nodes > kept ? draw_below(num_nodes - kept + 1, generator) : 0;
  return torch::arange(start, start + kept, torch::kInt64);
}

torch::Tensor subspace_crop(const torch::Tensor& positions, double radius, int64_t min_neighbors,
                            at::Generator& generator) {
  const int64_t n = positions.size(0);
  if (n == 0) return torch::empty({0}, torch::kInt64);
  const int64_t centre = draw_below(n, generator);
  const torch::Tensor distance = (positions - positions[centre]).pow(2).sum(1).sqrt();
  torch::Tensor keep = distance < radius;
  const int64_t k = std::min(min_neighbors, n);
  if (k > 0) {
    const torch::Tensor nearest = std::get<1>(distance.topk(k, 0, /*largest=*/false));
    keep.index_fill_(0, nearest, true);
  }
  return torch::nonzero(keep).flatten();
}

ResidueGraph mask_edges(const ResidueGraph& graph, double rate, at::Generator& generator) {
  const int64_t e = graph.edges.size(0);
  if (e == 0 || rate <= 0) return graph;
  const int64_t masked = std::max<int64_t>(1, static_cast<int64_t>(rate * static_cast<double>(e)));
  const torch::Tensor drop = torch::randperm(e, generator, torch::kInt64).slice(0, 0, masked);
  torch::Tensor keep = torch::ones({e}, torch::kBool);
  keep.index_fill_(0, drop, false);
  const torch::Tensor kept = torch::nonzero(keep).flatten();
  ResidueGraph out = graph;
  out.edges = graph.edges.index_select(0, kept);
  out.edge_features = graph.edge_features.index_select(0, kept);
  // The per-kind counts describe the unmasked construction; recount them.
  const torch::Tensor relation = out.edges.select(1, 2);
  out.num_radius_edges = (relation == kRadiusRelation).sum().item<int64_t>();
  out.num_knn_edges = (relation == kKnnRelation).sum().item<int64_t>();
  out.num_sequential_edges = out.edges.size(0) - out.num_radius_edges - out.num_knn_edges;
  return out;
}

ResidueGraph merge_graphs(const std::vector<ResidueGraph>& graphs) {
  ResidueGraph merged;
  std::vector<torch::Tensor> positions, types, features, edges, edge_features, node_residue;
  int64_t offset = 0;
  for (const auto& g : graphs) {
    positions.push_back(g.positions);
    types.push_back(g.residue_type);
    features.push_back(g.node_features);
    if (g.node_residue.defined()) node_residue.push_back(g.node_residue);
    torch::Tensor e = g.edges.clone();
    e.slice(1, 0, 2).add_(offset);
    edges.push_back(e);
    edge_features.push_back(g.edge_features);
    offset += g.num_nodes;
    merged.num_sequential_edges += g.num_sequential_edges;
    merged.num_radius_edges += g.num_radius_edges;
    merged.num_knn_edges += g.num_knn_edges;
  }
  merged.num_nodes = offset;
  merged.positions = torch::cat(positions);
  merged.residue_type = torch::cat(types);
  merged.node_features = torch::cat(features);
  merged.edges = torch::cat(edges);
  merged.edge_features = torch::cat(edge_features);
  if (node_residue.size() == graphs.size()) merged.node_residue = torch::cat(node_residue);
  return merged;
}

LineGraph merge_line_graphs(const std::vector<LineGraph>& lines) {
  LineGraph merged;
  std::vector<torch::Tensor> edges;
  for (const auto& line : lines) {
    torch::Tensor e = line.edges.clone();
    e.slice(1, 0, 2).add_(merged.num_nodes);
    edges.push_back(e);
    merged.num_nodes += line.num_nodes;
  }
  merged.edges = torch::cat(edges);
  return merged;
}

BatchView make_view(const std::vector<ChainNodes>& chains, const ContrastOptions& options,
                    const GraphOptions& graph_options, at::Generator& generator) {
  BatchView view;
  view.subspace = draw_below(2, generator) == 1;
  view.edge_masked = draw_below(2, generator) == 1;
  for (const auto& nodes : chains) {
    const torch::Tensor index =
        view.subspace ? subspace_crop(nodes.positions, options.subspace_radius, options.subspace_min_neighbors, generator)
                      : subsequence_crop(nodes.positions.size(0), options.subsequence_length, generator);
    // Edges are built on the cropped nodes (torchdrug crops the node layer
    // before the edge layers of its graph construction).
    ResidueGraph g = build_residue_graph(nodes.positions.index_select(0, index),
                                         nodes.residue_type.index_select(0, index), graph_options);
    g.node_residue = index;
    if (view.edge_masked) g = mask_edges(g, options.edge_mask_rate, generator);
    view.graphs.push_back(std::move(g));
  }
  return view;
}

MultiviewContrast::MultiviewContrast(ContrastOptions options) : options_(options) {
  if (options_.subsequence_length < 1) fail("gearnet pretraining: subsequence_length must be >= 1");
  if (!(options_.subspace_radius > 0)) fail("gearnet pretraining: subspace_radius must be > 0");
  if (options_.edge_mask_rate < 0 || options_.edge_mask_rate >= 1)
    fail("gearnet pretraining: edge_mask_rate must be in [0, 1), got ", options_.edge_mask_rate);
  if (!(options_.temperature > 0)) fail("gearnet pretraining: temperature must be > 0");
}

void MultiviewContrast::attach(std::shared_ptr<StructureEncoder> encoder) {
  encoder_ = std::dynamic_pointer_cast<GearNetEncoder>(encoder);
  if (!encoder_) fail("gearnet multiview contrast: the encoder is not a GearNet (create it as \"gearnet\")");
  const int64_t d = encoder_->output_dim();
  // torchdrug's MLP(output_dim, [output_dim] * 2): Linear, ReLU, Linear.
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(d, d), torch::nn::ReLU(), torch::nn::Linear(d, d)));
  mlp->to(encoder_->device());
}

torch::Tensor MultiviewContrast::project(const BatchView& view) {
  if (!encoder_) fail("gearnet multiview contrast: attach() an encoder before computing the loss");
  const ResidueGraph merged = merge_graphs(view.graphs);
  GraphOperators ops;
  if (encoder_->options().edge_feature) {
    std::vector<LineGraph> lines;
    for (const auto& g : view.graphs) lines.push_back(build_line_graph(g, encoder_->options().graph.num_angle_bins));
    const LineGraph line = merge_line_graphs(lines);
    ops = make_operators(merged, &line, encoder_->options().graph.num_angle_bins, encoder_->device());
  } else {
    ops = make_operators(merged, nullptr, 0, encoder_->device());
  }
  const GearNetOutput out = encoder_->forward(ops);
  // Sum readout per view graph.
  std::vector<int64_t> owner;
  owner.reserve(merged.num_nodes);
  for (size_t b = 0; b < view.graphs.size(); ++b) owner.insert(owner.end(), view.graphs[b].num_nodes, static_cast<int64_t>(b));
  const torch::Tensor node2graph = torch::tensor(owner, torch::kInt64).to(out.node_feature.device());
  const torch::Tensor graph_feature =
      torch::zeros({static_cast<int64_t>(view.graphs.size()), out.node_feature.size(1)}, out.node_feature.options())
          .index_add(0, node2graph, out.node_feature);
  return mlp->forward(graph_feature);
}

torch::Tensor MultiviewContrast::loss(const std::vector<ChainStructure>& batch, at::Generator& generator) {
  if (!encoder_) fail("gearnet multiview contrast: attach() an encoder before computing the loss");
  if (batch.size() < 2) fail("gearnet multiview contrast: a batch needs at least 2 chains (negatives), got ", batch.size());
  std::vector<ChainNodes> chains;
  for (const auto& chain : batch) {
    chains.push_back(chain_nodes(chain));
    if (chains.back().positions.size(0) < 2)
      fail("gearnet multiview contrast: chain ", chain.entry, ":", chain.chain, " has fewer than 2 residues with a CA");
  }
  const BatchView first = make_view(chains, options_, encoder_->options().graph, generator);
  const BatchView second = make_view(chains, options_, encoder_->options().graph, generator);
  const torch::Tensor x = torch::nn::functional::normalize(project(first), torch::nn::functional::NormalizeFuncOptions().dim(-1));
  const torch::Tensor y = torch::nn::functional::normalize(project(second), torch::nn::functional::NormalizeFuncOptions().dim(-1));
  // InfoNCE: view 1 of chain i must pick view 2 of chain i among the batch's
  // second views (torchdrug's cross_entropy(x @ y.T / tau, arange(B))).
  const torch::Tensor logits = torch::mm(x, y.t()) / options_.temperature;
  const torch::Tensor labels = torch::arange(static_cast<int64_t>(batch.size()), torch::TensorOptions().dtype(torch::kInt64).device(logits.device()));
  return torch::nn::functional::cross_entropy(logits, labels);
}

}  // namespace sapling::gearnet
