// Builds GearNet's residue graph (sequential, radius and KNN edges with 59-d features) and its spatial line graph.
#include "graph.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "sapling/error.hpp"

namespace sapling::gearnet {

namespace {

struct Edge {
  int64_t u, v, relation;
};

// torchdrug drops radius/KNN pairs whose CA positions coincide (distance < 1e-10).
constexpr float kSamePositionEps = 1e-10f;

float squared_distance(const float* a, const float* b) {
  const float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return dx * dx + dy * dy + dz * dz;
}

void check_graph_options(const GraphOptions& o) {
  if (!(o.radius > 0)) fail("gearnet: radius must be > 0, got ", o.radius);
  if (o.knn < 0) fail("gearnet: knn must be >= 0, got ", o.knn);
  if (o.max_radius_neighbors < 0) fail("gearnet: max_radius_neighbors must be >= 0, got ", o.max_radius_neighbors);
  if (o.min_sequence_separation < 0)
    fail("gearnet: min_sequence_separation must be >= 0, got ", o.min_sequence_separation);
  if (o.num_angle_bins < 1) fail("gearnet: num_angle_bins must be >= 1, got ", o.num_angle_bins);
}

// The pair filter the radius and KNN edges share: far enough apart in sequence, and not at one position.
struct PairFilter {
  const float* x;
  int64_t min_sequence_separation;
  bool operator()(int64_t u, int64_t v) const {
    return std::abs(u - v) >= min_sequence_separation &&
           std::sqrt(squared_distance(x + 3 * u, x + 3 * v)) >= kSamePositionEps;
  }
};

// Sequential edges: u -> u + d with relation d + 2, for d = -2..2 (d = 0: self loop).
// A ChainStructure is one chain, so every pair of nodes is "within a chain".
void add_sequential_edges(int64_t n, std::vector<Edge>& edges) {
  for (int64_t d = -2; d <= 2; ++d)
    for (int64_t u = 0; u < n; ++u)
      if (u + d >= 0 && u + d < n) edges.push_back({u, u + d, d + 2});
}

// Radius edges: for each TARGET node v, scan the sources u != v in increasing node
// index and keep the first `max_radius_neighbors` with CA distance < radius;
// THEN drop pairs with |u - v| < min_sequence_separation. This is the order of
// the reference: torch_cluster's radius_graph caps the neighbours of each query
// node (in index order on GPU; edges point neighbour -> query), and torchdrug's
// SpatialEdge applies the sequence-separation filter to its output. So close
// sequence neighbours use up cap slots, and a node can end with fewer than 32
// radius edges even when more long-range neighbours lie within the radius.
// (torch_cluster reserves one of 33 slots for the query itself; we cap the
// non-self neighbours at exactly 32, which differs only when a node has 33+
// lower-index neighbours within the radius.)
void add_radius_edges(const float* x, int64_t n, const GraphOptions& options, const PairFilter& keep,
                      std::vector<Edge>& edges) {
  const float radius_sq = static_cast<float>(options.radius * options.radius);
  for (int64_t v = 0; v < n; ++v) {
    int64_t kept = 0;
    for (int64_t u = 0; u < n && kept < options.max_radius_neighbors; ++u) {
      if (u == v || !(squared_distance(x + 3 * u, x + 3 * v) < radius_sq)) continue;
      ++kept;
      if (keep(u, v)) edges.push_back({u, v, kRadiusRelation});
    }
  }
}

// KNN edges: each target v receives edges from its `knn` nearest nodes u != v (ties
// broken by lower index), then pairs with |u - v| < min_sequence_separation
// are dropped, so a node can keep fewer than `knn`.
void add_knn_edges(const float* x, int64_t n, const GraphOptions& options, const PairFilter& keep,
                   std::vector<Edge>& edges) {
  std::vector<std::pair<float, int64_t>> candidates;
  for (int64_t v = 0; v < n; ++v) {
    candidates.clear();
    for (int64_t u = 0; u < n; ++u)
      if (u != v) candidates.emplace_back(squared_distance(x + 3 * u, x + 3 * v), u);
    const size_t k = std::min<size_t>(static_cast<size_t>(options.knn), candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end());
    for (size_t c = 0; c < k; ++c) {
      const int64_t u = candidates[c].second;
      if (keep(u, v)) edges.push_back({u, v, kKnnRelation});
    }
  }
}

// Edge tensors: [E, 3] (u, v, relation) and the 59-d features (both residue types, relation, sequence distance,
// CA distance).
void write_edges(const std::vector<Edge>& edges, ResidueGraph& g) {
  const float* x = g.positions.data_ptr<float>();
  const int64_t* type = g.residue_type.data_ptr<int64_t>();
  const int64_t num_edges = static_cast<int64_t>(edges.size());
  g.edges = torch::empty({num_edges, 3}, torch::kInt64);
  g.edge_features = torch::zeros({num_edges, kEdgeFeatureDim}, torch::kFloat32);
  auto* e = g.edges.data_ptr<int64_t>();
  auto* f = g.edge_features.data_ptr<float>();
  for (int64_t k = 0; k < num_edges; ++k) {
    const Edge& edge = edges[k];
    e[3 * k] = edge.u;
    e[3 * k + 1] = edge.v;
    e[3 * k + 2] = edge.relation;
    float* row = f + k * kEdgeFeatureDim;
    // Edge features have 20 types only: unknown residues count as GLY (index 0).
    const auto edge_type = [&](int64_t node) { return type[node] == kNumResidueTypes ? 0 : type[node]; };
    row[edge_type(edge.u)] = 1;
    row[kNumResidueTypes + edge_type(edge.v)] = 1;
    row[2 * kNumResidueTypes + edge.relation] = 1;
    row[2 * kNumResidueTypes + kNumRelations + std::min(std::abs(edge.u - edge.v), kMaxSequenceDistanceFeature)] = 1;
    row[kEdgeFeatureDim - 1] = std::sqrt(squared_distance(x + 3 * edge.u, x + 3 * edge.v));
  }
}

}  // namespace

int64_t residue_type_index(char one_letter) {
  // Position in "GASPVTCILNDQKEMHFRYW" = GLY ALA SER PRO VAL THR CYS ILE LEU ASN
  // ASP GLN LYS GLU MET HIS PHE ARG TYR TRP (torchdrug's residue2id order).
  static const char* kOrder = "GASPVTCILNDQKEMHFRYW";
  const char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(one_letter)));
  for (int64_t i = 0; i < kNumResidueTypes; ++i)
    if (kOrder[i] == upper) return i;
  return kNumResidueTypes;  // unknown
}

ResidueGraph build_residue_graph(const torch::Tensor& positions_in, const torch::Tensor& residue_type_in,
                                 const GraphOptions& options) {
  check_graph_options(options);
  if (positions_in.dim() != 2 || positions_in.size(1) != 3)
    fail("gearnet: node positions must have shape [N, 3], got ", positions_in.sizes());
  if (residue_type_in.dim() != 1 || residue_type_in.size(0) != positions_in.size(0))
    fail("gearnet: residue types must have shape [N] matching the positions, got ", residue_type_in.sizes());

  ResidueGraph g;
  g.num_nodes = positions_in.size(0);
  g.positions = positions_in.to(torch::kCPU, torch::kFloat32).contiguous();
  g.residue_type = residue_type_in.to(torch::kCPU, torch::kInt64).contiguous();
  if (g.num_nodes > 0 && (g.residue_type.min().item<int64_t>() < 0 ||
                          g.residue_type.max().item<int64_t>() > kNumResidueTypes))
    fail("gearnet: residue types must be in 0..", kNumResidueTypes);
  g.node_residue = torch::arange(g.num_nodes, torch::kInt64);  // identity unless built from a chain
  g.node_features = torch::one_hot(g.residue_type, kNodeFeatureDim).to(torch::kFloat32);

  const int64_t n = g.num_nodes;
  const float* x = g.positions.data_ptr<float>();
  const PairFilter keep{x, options.min_sequence_separation};
  std::vector<Edge> edges;
  edges.reserve(static_cast<size_t>(n) * (5 + options.max_radius_neighbors / 2 + options.knn));
  add_sequential_edges(n, edges);
  g.num_sequential_edges = static_cast<int64_t>(edges.size());
  const size_t before_radius = edges.size();
  add_radius_edges(x, n, options, keep, edges);
  g.num_radius_edges = static_cast<int64_t>(edges.size() - before_radius);
  const size_t before_knn = edges.size();
  add_knn_edges(x, n, options, keep, edges);
  g.num_knn_edges = static_cast<int64_t>(edges.size() - before_knn);
  write_edges(edges, g);
  return g;
}

ResidueGraph build_residue_graph(const ChainStructure& chain, const GraphOptions& options) {
  const int64_t length = chain.length();
  if (!chain.coords.defined() || chain.coords.dim() != 3 || chain.coords.size(0) != length ||
      chain.coords.size(1) != kNumBackboneAtoms || chain.coords.size(2) != 3)
    fail("gearnet: chain ", chain.entry, ":", chain.chain, ": coords must have shape [", length, ", 5, 3]");
  const torch::Tensor ca = chain.coords.select(1, kCA).to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor has_ca = torch::isfinite(ca).all(1);
  if (chain.observed.defined()) {
    if (chain.observed.numel() != length)
      fail("gearnet: chain ", chain.entry, ":", chain.chain, ": observed has ", chain.observed.numel(),
           " entries for ", length, " residues");
    has_ca = has_ca & chain.observed.to(torch::kCPU, torch::kBool);
  }
  const torch::Tensor node_residue = torch::nonzero(has_ca).flatten();
  const int64_t n = node_residue.size(0);
  torch::Tensor types = torch::empty({n}, torch::kInt64);
  const int64_t* idx = node_residue.data_ptr<int64_t>();
  int64_t* type = types.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) type[i] = residue_type_index(chain.sequence[idx[i]]);
  ResidueGraph g = build_residue_graph(ca.index_select(0, node_residue), types, options);
  g.node_residue = node_residue;
  return g;
}

LineGraph build_line_graph(const ResidueGraph& graph, int64_t num_angle_bins) {
  if (num_angle_bins < 1) fail("gearnet: num_angle_bins must be >= 1, got ", num_angle_bins);
  const int64_t n = graph.num_nodes;
  const int64_t num_edges = graph.edges.size(0);
  const int64_t* e = graph.edges.data_ptr<int64_t>();
  const float* x = graph.positions.data_ptr<float>();

  // Incoming and outgoing edge lists per node (CSR, edge-index order).
  std::vector<int64_t> in_start(n + 1, 0), out_start(n + 1, 0);
  for (int64_t k = 0; k < num_edges; ++k) {
    ++out_start[e[3 * k] + 1];
    ++in_start[e[3 * k + 1] + 1];
  }
  for (int64_t j = 0; j < n; ++j) {
    in_start[j + 1] += in_start[j];
    out_start[j + 1] += out_start[j];
  }
  std::vector<int64_t> incoming(num_edges), outgoing(num_edges);
  {
    std::vector<int64_t> in_fill(in_start.begin(), in_start.end() - 1), out_fill(out_start.begin(), out_start.end() - 1);
    for (int64_t k = 0; k < num_edges; ++k) {
      outgoing[out_fill[e[3 * k]]++] = k;
      incoming[in_fill[e[3 * k + 1]]++] = k;
    }
  }
  int64_t total = 0;
  for (int64_t j = 0; j < n; ++j) total += (in_start[j + 1] - in_start[j]) * (out_start[j + 1] - out_start[j]);

  LineGraph line;
  line.num_nodes = num_edges;
  line.edges = torch::empty({total, 3}, torch::kInt64);
  int64_t* out = line.edges.data_ptr<int64_t>();
  const float pi = static_cast<float>(M_PI);
  int64_t m = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float* xj = x + 3 * j;
    for (int64_t p = in_start[j]; p < in_start[j + 1]; ++p) {
      const int64_t a = incoming[p];
      const float* xk = x + 3 * e[3 * a];  // a = (k -> j)
      const float v2[3] = {xk[0] - xj[0], xk[1] - xj[1], xk[2] - xj[2]};
      for (int64_t q = out_start[j]; q < out_start[j + 1]; ++q) {
        const int64_t b = outgoing[q];
        const float* xi = x + 3 * e[3 * b + 1];  // b = (j -> i)
        const float v1[3] = {xi[0] - xj[0], xi[1] - xj[1], xi[2] - xj[2]};
        const float dot = v1[0] * v2[0] + v1[1] * v2[1] + v1[2] * v2[2];
        const float cx = v1[1] * v2[2] - v1[2] * v2[1], cy = v1[2] * v2[0] - v1[0] * v2[2],
                    cz = v1[0] * v2[1] - v1[1] * v2[0];
        const float cross = std::sqrt(cx * cx + cy * cy + cz * cz);
        // A zero vector (self loop, or k == i == j) has no angle: use 0. The
        // literal atan2 would return pi when the dot product is -0 (all
        // products negative zeros), and torchdrug then computes relation
        // 8 == num_bins, which spills into the next line node's bin 0.
        const float angle = (cross == 0 && dot == 0) ? 0.0f : std::atan2(cross, dot);  // in [0, pi]
        const int64_t bin = std::min<int64_t>(static_cast<int64_t>(angle / pi * num_angle_bins), num_angle_bins - 1);
        out[3 * m] = a;
        out[3 * m + 1] = b;
        out[3 * m + 2] = bin;
        ++m;
      }
    }
  }
  return line;
}

}  // namespace sapling::gearnet
