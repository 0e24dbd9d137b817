// GearNet's multiview-contrast pretraining (crops, edge masking, MLP head, InfoNCE) as a StructurePretrainingObjective.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "graph.hpp"
#include "model.hpp"
#include "sapling/pretraining.hpp"

namespace sapling::gearnet {

// Defaults of the GearNet paper's multiview-contrast pretraining (torchdrug
// config mc_gearnet_edge.yaml): crop functions {subsequence of 50 residues,
// subspace of radius 15 A with at least 15 residues}, noise functions
// {identity, random edge mask at 15%}, 2-layer MLP head, temperature 0.07.
struct ContrastOptions {
  int64_t subsequence_length = 50;
  double subspace_radius = 15.0;
  int64_t subspace_min_neighbors = 15;
  double edge_mask_rate = 0.15;
  double temperature = 0.07;
};

// The residues with a CA atom of one chain, as graph nodes.
struct ChainNodes {
  torch::Tensor positions;     // [N, 3] float32 CA coordinates
  torch::Tensor residue_type;  // [N] int64 in 0..20
};
ChainNodes chain_nodes(const ChainStructure& chain);

// Node indices (ascending) of a random contiguous window of `length` nodes
// (all nodes when there are fewer): start uniform in [0, N - length].
torch::Tensor subsequence_crop(int64_t num_nodes, int64_t length, at::Generator& generator);
// Node indices (ascending) within `radius` of a uniformly drawn centre node,
// extended to its `min_neighbors` nearest nodes (centre included) when the
// ball holds fewer.
torch::Tensor subspace_crop(const torch::Tensor& positions, double radius, int64_t min_neighbors,
                            at::Generator& generator);
// Removes floor(rate * E) (at least 1 when E > 0 and rate > 0) uniformly
// drawn edges, keeping the order of the others; edge features follow.
ResidueGraph mask_edges(const ResidueGraph& graph, double rate, at::Generator& generator);

// Disjoint union of residue graphs and of their line graphs (node and edge
// indices offset), so that one forward pass runs a whole batch and batch
// norm sees every node of it, as in torchdrug's packed graphs.
ResidueGraph merge_graphs(const std::vector<ResidueGraph>& graphs);
LineGraph merge_line_graphs(const std::vector<LineGraph>& lines);

// One view of every chain of a batch: the crop function and the noise
// function are drawn once per view for the whole batch (as torchdrug applies
// them to the packed batch); crop windows and masked edges per chain.
struct BatchView {
  std::vector<ResidueGraph> graphs;
  bool subspace = false, edge_masked = false;
};
BatchView make_view(const std::vector<ChainNodes>& chains, const ContrastOptions& options,
                    const GraphOptions& graph_options, at::Generator& generator);

class MultiviewContrast : public StructurePretrainingObjective {
 public:
  explicit MultiviewContrast(ContrastOptions options);
  void attach(std::shared_ptr<StructureEncoder> encoder) override;
  torch::Tensor loss(const std::vector<ChainStructure>& batch, at::Generator& generator) override;
  std::string encoder_name() const override { return "gearnet"; }

  // Graph features [B, D] (sum over each view graph's nodes) after the MLP.
  torch::Tensor project(const BatchView& view);
  const ContrastOptions& options() const { return options_; }

  torch::nn::Sequential mlp{nullptr};

 private:
  ContrastOptions options_;
  std::shared_ptr<GearNetEncoder> encoder_;
};

}  // namespace sapling::gearnet
