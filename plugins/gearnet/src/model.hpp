// GearNet / GearNet-Edge: relational graph convolutions over the residue graph (and its line graph), as a StructureEncoder.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "graph.hpp"
#include "sapling/interfaces.hpp"  // for StructureEncoder

namespace sapling::gearnet {

// Sparse [num_slots, num_sources] matrix with a 1 at (slot[k], source[k]) for
// each k (repeated pairs add up), so that `matrix.mm(x)` is the scatter-sum
// out[slot] = sum_k x[source[k]] without materialising the gathered messages
// (the line graph has ~10^5 edges and 512-d messages: a gather would need
// hundreds of MB). Its autograd backward is the transposed product.
torch::Tensor scatter_matrix(const torch::Tensor& slot, const torch::Tensor& source, int64_t num_slots,
                             int64_t num_sources);

// Precomputed aggregation operators of one graph, on the model's device.
struct GraphOperators {
  int64_t num_nodes = 0, num_relations = 0;
  // [N * R, N]: slot v * R + r collects x_u of every edge (u -> v, r).
  torch::Tensor node_aggregation;
  // Edge branch only: line graph operator [E * B, E] (B angle bins) and the
  // edge -> (target node, relation) operator [N * R, E]; edge input features [E, 59].
  int64_t num_edges = 0, num_angle_bins = 0;
  torch::Tensor line_aggregation, edge_to_node, edge_features;
  torch::Tensor node_features;  // [N, 21]
};

// `line_graph` (with its bin count) only for GearNet-Edge, else nullptr.
GraphOperators make_operators(const ResidueGraph& graph, const LineGraph* line_graph, int64_t num_angle_bins,
                              const torch::Device& device);

// torchdrug's GeometricRelationalGraphConv: agg[v, r] = sum over edges
// (u -> v, r) of x_u (no normalisation), flattened relation-major to
// [N, R * in]; out = ReLU(BN(linear(agg) + self_loop(x))).
struct RelationalConvImpl : torch::nn::Module {
  RelationalConvImpl(int64_t input_dim, int64_t output_dim, int64_t num_relations, bool batch_norm = true);
  // [N, R * in] from x [num_sources, in] and an aggregation operator [N * R, num_sources].
  torch::Tensor aggregate(const torch::Tensor& aggregation, const torch::Tensor& x) const;
  torch::Tensor forward(const torch::Tensor& aggregation, const torch::Tensor& x);

  int64_t input_dim, output_dim, num_relations;
  torch::nn::Linear self_loop{nullptr}, linear{nullptr};
  torch::nn::BatchNorm1d batch_norm{nullptr};
};
TORCH_MODULE(RelationalConv);

struct GearNetOptions {
  int64_t input_dim = kNodeFeatureDim;
  std::vector<int64_t> hidden_dims = std::vector<int64_t>(6, 512);
  bool edge_feature = true;   // GearNet-Edge (line-graph branch); false = plain GearNet
  std::string output = "concat";  // "concat" | "last" | a layer index (negative counts from the end)
  bool short_cut = true;
  bool batch_norm = true;
  GraphOptions graph;
};

struct GearNetOutput {
  std::vector<torch::Tensor> hiddens;  // each layer's output [N, hidden_dims[i]]
  torch::Tensor node_feature;          // [N, output_dim()] as selected by `output`
  torch::Tensor graph_feature;         // [output_dim()] sum over nodes
};

// The encoder is itself the GearNet module, so its named_parameters() and
// named_buffers() are exactly the converted torchdrug state-dict keys:
// layers.{i}.{self_loop,linear}.{weight,bias}, layers.{i}.batch_norm.*,
// edge_layers.{i}.* likewise, batch_norms.{i}.*.
class GearNetEncoder : public StructureEncoder {
 public:
  explicit GearNetEncoder(GearNetOptions options);

  int64_t output_dim() const override { return output_dim_; }
  torch::Tensor embed(const ChainStructure& chain) override;
  // The chains' graphs (built on CPU threads) joined into one disjoint graph,
  // one forward pass: in evaluation mode each chain's rows equal embed()'s up
  // to float summation order, with one launch sequence for the whole batch.
  std::vector<torch::Tensor> embed_batch(const std::vector<ChainStructure>& chains) override;
  void load_weights(const std::filesystem::path& file) override;
  void save_weights(const std::filesystem::path& file) const override;

  GearNetOutput forward(const GraphOperators& ops);
  // Line graph (GearNet-Edge) and operators of a residue graph, on this module's device.
  GraphOperators prepare(const ResidueGraph& graph) const;

  const GearNetOptions& options() const { return options_; }
  int64_t num_layers() const { return static_cast<int64_t>(options_.hidden_dims.size()); }
  torch::Device device() const;

  torch::nn::ModuleList layers{nullptr}, edge_layers{nullptr}, batch_norms{nullptr};

 private:
  GearNetOptions options_;
  int64_t output_layer_ = -1;  // -1: concat
  int64_t output_dim_ = 0;
};

// Parses GearNetOptions::output: -1 for "concat", else the layer index.
int64_t parse_output_layer(const std::string& output, int64_t num_layers);

}  // namespace sapling::gearnet
