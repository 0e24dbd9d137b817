// GearNet(-Edge) forward pass (relational convolutions, edge branch, batch norms), embedding and weight I/O.
#include "model.hpp"

#include <set>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/parallel.hpp"
#include "sapling/safetensors.hpp"  // for TensorStore, save_safetensors

namespace sapling::gearnet {

torch::Tensor scatter_matrix(const torch::Tensor& slot, const torch::Tensor& source, int64_t num_slots,
                             int64_t num_sources) {
  const auto indices = torch::stack({slot.to(torch::kInt64), source.to(torch::kInt64)});
  const auto values = torch::ones({slot.size(0)}, torch::TensorOptions().dtype(torch::kFloat32).device(slot.device()));
  return torch::sparse_coo_tensor(indices, values, {num_slots, num_sources}).coalesce();
}

GraphOperators make_operators(const ResidueGraph& graph, const LineGraph* line_graph, int64_t num_angle_bins,
                              const torch::Device& device) {
  GraphOperators ops;
  ops.num_nodes = graph.num_nodes;
  ops.num_relations = kNumRelations;
  ops.num_edges = graph.edges.size(0);
  ops.node_features = graph.node_features.to(device);
  const auto edges = graph.edges.to(device);
  const auto u = edges.select(1, 0), v = edges.select(1, 1), r = edges.select(1, 2);
  const auto node_slot = v * kNumRelations + r;
  ops.node_aggregation = scatter_matrix(node_slot, u, ops.num_nodes * kNumRelations, ops.num_nodes);
  if (line_graph) {
    if (line_graph->num_nodes != ops.num_edges)
      fail("gearnet: line graph has ", line_graph->num_nodes, " nodes for ", ops.num_edges, " edges");
    const auto line = line_graph->edges.to(device);
    if (line.size(0) && line.select(1, 2).max().item<int64_t>() >= num_angle_bins)
      fail("gearnet: line graph has angle bins >= ", num_angle_bins);
    ops.num_angle_bins = num_angle_bins;
    // Line edge (a -> b, bin): slot b * B + bin collects the features of edge a.
    ops.line_aggregation = scatter_matrix(line.select(1, 1) * num_angle_bins + line.select(1, 2), line.select(1, 0),
                                          ops.num_edges * num_angle_bins, ops.num_edges);
    // Each edge k = (u -> v, r) sends its hidden state to slot v * R + r.
    ops.edge_to_node = scatter_matrix(node_slot, torch::arange(ops.num_edges, edges.options()),
                                      ops.num_nodes * kNumRelations, ops.num_edges);
    ops.edge_features = graph.edge_features.to(device);
  }
  return ops;
}

// ---------------------------------------------------------------- RelationalConv

RelationalConvImpl::RelationalConvImpl(int64_t input_dim_, int64_t output_dim_, int64_t num_relations_,
                                       bool batch_norm_)
    : input_dim(input_dim_), output_dim(output_dim_), num_relations(num_relations_) {
  // Registration order matches torchdrug's (self_loop, linear, batch_norm).
  self_loop = register_module("self_loop", torch::nn::Linear(input_dim, output_dim));
  linear = register_module("linear", torch::nn::Linear(num_relations * input_dim, output_dim));
  if (batch_norm_) batch_norm = register_module("batch_norm", torch::nn::BatchNorm1d(output_dim));
}

torch::Tensor RelationalConvImpl::aggregate(const torch::Tensor& aggregation, const torch::Tensor& x) const {
  if (aggregation.size(0) % num_relations != 0 || aggregation.size(1) != x.size(0) || x.size(1) != input_dim)
    fail("gearnet: aggregation operator ", aggregation.sizes(), " does not fit input ", x.sizes(), " with ",
         num_relations, " relations and input dim ", input_dim);
  // Row v * R + r of the product is agg[v, r]; viewing [N * R, in] as
  // [N, R * in] flattens relation-major, as torchdrug's update.view does.
  return torch::mm(aggregation, x).view({aggregation.size(0) / num_relations, num_relations * input_dim});
}

torch::Tensor RelationalConvImpl::forward(const torch::Tensor& aggregation, const torch::Tensor& x) {
  auto out = linear(aggregate(aggregation, x)) + self_loop(x);
  if (batch_norm) out = batch_norm(out);
  return torch::relu(out);
}

// ---------------------------------------------------------------- GearNetEncoder

int64_t parse_output_layer(const std::string& output, int64_t num_layers) {
  if (output == "concat") return -1;
  if (output == "last") return num_layers - 1;
  int64_t layer = 0;
  size_t used = 0;
  try {
    layer = std::stoll(output, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != output.size() || layer < -num_layers || layer >= num_layers)
    fail("gearnet: option 'output' must be \"concat\", \"last\" or a layer index in ", -num_layers, "..",
         num_layers - 1, ", got \"", output, "\"");
  return layer < 0 ? layer + num_layers : layer;
}

GearNetEncoder::GearNetEncoder(GearNetOptions options) : options_(std::move(options)) {
  const auto& hidden = options_.hidden_dims;
  if (hidden.empty()) fail("gearnet: hidden_dims must not be empty");
  for (int64_t d : hidden)
    if (d <= 0) fail("gearnet: hidden_dims must be positive, got ", d);
  if (options_.edge_feature && options_.graph.num_angle_bins < 1)
    fail("gearnet: num_angle_bins must be >= 1, got ", options_.graph.num_angle_bins);
  output_layer_ = parse_output_layer(options_.output, num_layers());
  output_dim_ = 0;
  if (output_layer_ < 0)
    for (int64_t d : hidden) output_dim_ += d;
  else
    output_dim_ = hidden[output_layer_];

  // Node dims [in, h0, h1, ...]; the edge layer i maps edge_dims[i] -> dims[i]
  // (edge dims [59, in, h0, ...]) so that its output, scattered per
  // (node, relation), fits layer i's own `linear` (R * dims[i] inputs).
  std::vector<int64_t> dims{options_.input_dim};
  dims.insert(dims.end(), hidden.begin(), hidden.end());
  layers = register_module("layers", torch::nn::ModuleList());
  for (size_t i = 0; i + 1 < dims.size(); ++i)
    layers->push_back(RelationalConv(dims[i], dims[i + 1], kNumRelations, options_.batch_norm));
  if (options_.edge_feature) {
    edge_layers = register_module("edge_layers", torch::nn::ModuleList());
    std::vector<int64_t> edge_dims{kEdgeFeatureDim};
    edge_dims.insert(edge_dims.end(), dims.begin(), dims.end() - 1);
    for (size_t i = 0; i + 1 < edge_dims.size(); ++i)
      edge_layers->push_back(
          RelationalConv(edge_dims[i], edge_dims[i + 1], options_.graph.num_angle_bins, options_.batch_norm));
  }
  if (options_.batch_norm) {
    batch_norms = register_module("batch_norms", torch::nn::ModuleList());
    for (size_t i = 0; i + 1 < dims.size(); ++i) batch_norms->push_back(torch::nn::BatchNorm1d(dims[i + 1]));
  }
}

torch::Device GearNetEncoder::device() const {
  const auto params = parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

GraphOperators GearNetEncoder::prepare(const ResidueGraph& graph) const {
  if (!options_.edge_feature) return make_operators(graph, nullptr, 0, device());
  const LineGraph line = build_line_graph(graph, options_.graph.num_angle_bins);
  return make_operators(graph, &line, options_.graph.num_angle_bins, device());
}

GearNetOutput GearNetEncoder::forward(const GraphOperators& ops) {
  const int64_t n = ops.num_nodes;
  if (is_training() && options_.batch_norm && n < 2)
    fail("gearnet: batch norm in training mode needs at least 2 residues with a CA atom, got ", n);
  if (ops.node_features.size(0) != n || ops.node_features.size(1) != options_.input_dim)
    fail("gearnet: node features ", ops.node_features.sizes(), " do not match ", n, " nodes of dim ",
         options_.input_dim);
  torch::Tensor edge_input;
  if (options_.edge_feature) {
    if (!ops.edge_to_node.defined()) fail("gearnet: GearNet-Edge needs the line graph (edge operators missing)");
    if (ops.num_angle_bins != options_.graph.num_angle_bins)
      fail("gearnet: line graph built with ", ops.num_angle_bins, " angle bins, the model has ",
           options_.graph.num_angle_bins);
    edge_input = ops.edge_features;
  }

  GearNetOutput out;
  torch::Tensor x = ops.node_features;
  for (int64_t i = 0; i < num_layers(); ++i) {
    auto conv = layers[i]->as<RelationalConvImpl>();
    torch::Tensor h = conv->forward(ops.node_aggregation, x);
    if (options_.short_cut && h.sizes() == x.sizes()) h = h + x;
    if (options_.edge_feature) {
      auto edge_conv = edge_layers[i]->as<RelationalConvImpl>();
      const torch::Tensor edge_hidden = edge_conv->forward(ops.line_aggregation, edge_input);
      // Edge messages summed per (target node, relation), through the node
      // layer's own linear (bias included) and ReLU.
      const torch::Tensor update =
          torch::mm(ops.edge_to_node, edge_hidden).view({n, kNumRelations * edge_hidden.size(1)});
      h = h + torch::relu(conv->linear(update));
      edge_input = edge_hidden;
    }
    if (options_.batch_norm) h = batch_norms[i]->as<torch::nn::BatchNorm1dImpl>()->forward(h);
    out.hiddens.push_back(h);
    x = h;
  }
  out.node_feature = output_layer_ < 0 ? torch::cat(out.hiddens, 1) : out.hiddens[output_layer_];
  out.graph_feature = out.node_feature.sum(0);
  return out;
}

torch::Tensor GearNetEncoder::embed(const ChainStructure& chain) {
  const auto device = this->device();
  torch::Tensor result = torch::zeros({chain.length(), output_dim_}, torch::TensorOptions().device(device));
  const ResidueGraph graph = build_residue_graph(chain, options_.graph);
  if (graph.num_nodes == 0) return result;
  const GraphOperators ops = prepare(graph);
  const GearNetOutput out = forward(ops);
  return result.index_copy(0, graph.node_residue.to(device), out.node_feature);
}

std::vector<torch::Tensor> GearNetEncoder::embed_batch(const std::vector<ChainStructure>& chains) {
  if (is_training()) return StructureEncoder::embed_batch(chains);  // batch norm would mix the chains' statistics
  const auto device = this->device();
  const size_t n = chains.size();
  std::vector<ResidueGraph> graphs(n);
  std::vector<LineGraph> lines(n);
  std::vector<std::string> errors(n);
  parallel_for(0, n, std::max(1, at::get_num_threads()), [&](size_t i) {
    try {
      graphs[i] = build_residue_graph(chains[i], options_.graph);
      if (options_.edge_feature) lines[i] = build_line_graph(graphs[i], options_.graph.num_angle_bins);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  for (size_t i = 0; i < n; ++i)
    if (!errors[i].empty()) fail(chains[i].label(), ": ", errors[i]);
  // The disjoint union: node and edge indices of chain i shifted past those of the chains before it.
  ResidueGraph joined;
  LineGraph joined_line;
  std::vector<torch::Tensor> node_features, edges, edge_features, line_edges;
  int64_t node_offset = 0, edge_offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const ResidueGraph& g = graphs[i];
    if (g.num_nodes == 0) continue;
    node_features.push_back(g.node_features);
    edges.push_back(g.edges + torch::tensor({node_offset, node_offset, int64_t{0}}, torch::kInt64));
    if (options_.edge_feature) {
      edge_features.push_back(g.edge_features);
      line_edges.push_back(lines[i].edges + torch::tensor({edge_offset, edge_offset, int64_t{0}}, torch::kInt64));
    }
    node_offset += g.num_nodes;
    edge_offset += g.edges.size(0);
  }
  std::vector<torch::Tensor> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = torch::zeros({chains[i].length(), output_dim_}, torch::TensorOptions().device(device));
  if (node_offset == 0) return out;
  joined.num_nodes = node_offset;
  joined.node_features = torch::cat(node_features);
  joined.edges = torch::cat(edges);
  if (options_.edge_feature) {
    joined.edge_features = torch::cat(edge_features);
    joined_line.num_nodes = edge_offset;
    joined_line.edges = torch::cat(line_edges);
  }
  const GraphOperators ops =
      make_operators(joined, options_.edge_feature ? &joined_line : nullptr, options_.graph.num_angle_bins, device);
  const torch::Tensor rows = forward(ops).node_feature;
  int64_t begin = 0;
  for (size_t i = 0; i < n; ++i) {
    const ResidueGraph& g = graphs[i];
    if (g.num_nodes == 0) continue;
    out[i].index_copy_(0, g.node_residue.to(device), rows.slice(0, begin, begin + g.num_nodes));
    begin += g.num_nodes;
  }
  return out;
}

// ---------------------------------------------------------------- weights

namespace {

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::string join_limited(const std::vector<std::string>& items, size_t limit = 12) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size() && i < limit; ++i) os << (i ? ", " : "") << items[i];
  if (items.size() > limit) os << ", ... (" << items.size() - limit << " more)";
  return os.str();
}

// Parameters and buffers by state-dict key.
std::vector<std::pair<std::string, torch::Tensor>> state_tensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace

void GearNetEncoder::load_weights(const std::filesystem::path& file) {
  const TensorStore store(file);
  const auto expected = state_tensors(*this);
  std::vector<std::string> missing, wrong_shape, unexpected;
  std::set<std::string> known;
  for (const auto& [name, tensor] : expected) {
    known.insert(name);
    if (!store.contains(name)) {
      missing.push_back(name);
      continue;
    }
    const auto& shape = store.entry(name).shape;
    if (c10::IntArrayRef(shape) != tensor.sizes())
      wrong_shape.push_back(name + " (file " + shape_text(shape) + ", model " + shape_text(tensor.sizes()) + ")");
  }
  for (const auto& name : store.keys())
    if (!known.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !wrong_shape.empty() || !unexpected.empty()) {
    std::ostringstream os;
    os << file.string() << ": weights do not match this GearNet (hidden_dims " << shape_text(options_.hidden_dims)
       << ", edge_feature " << (options_.edge_feature ? "true" : "false") << ")";
    if (!missing.empty()) os << "; missing " << missing.size() << " keys: " << join_limited(missing);
    if (!unexpected.empty()) os << "; unexpected " << unexpected.size() << " keys: " << join_limited(unexpected);
    if (!wrong_shape.empty()) os << "; wrong shape: " << join_limited(wrong_shape);
    fail(os.str());
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : expected) tensor.copy_(store.get(name).to(tensor.scalar_type()));
}

void GearNetEncoder::save_weights(const std::filesystem::path& file) const {
  NamedTensors tensors;
  for (const auto& [name, tensor] : state_tensors(*this)) tensors.emplace_back(name, tensor.detach());
  std::ostringstream dims;
  for (size_t i = 0; i < options_.hidden_dims.size(); ++i) dims << (i ? "," : "") << options_.hidden_dims[i];
  save_safetensors(file, tensors,
                   {{"format", "sapling-gearnet"},
                    {"hidden_dims", dims.str()},
                    {"edge_feature", options_.edge_feature ? "true" : "false"},
                    {"num_angle_bins", std::to_string(options_.graph.num_angle_bins)}});
}

}  // namespace sapling::gearnet
