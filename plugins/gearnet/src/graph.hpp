// Residue graph and spatial line graph that GearNet(-Edge) runs on, built from one ChainStructure.
#pragma once
#include <torch/torch.h>

#include "sapling/structure.hpp"  // for ChainStructure

namespace sapling::gearnet {

// Number of residue types in GearNet's vocabulary (index 20 of the node
// feature is "unknown"; edge features have only the 20 standard types).
constexpr int64_t kNumResidueTypes = 20;
constexpr int64_t kNodeFeatureDim = kNumResidueTypes + 1;  // 21
constexpr int64_t kMaxSequenceDistanceFeature = 10;        // min(|i-j|, 10) one-hot
constexpr int64_t kNumSequentialRelations = 5;             // offsets -2..2
constexpr int64_t kRadiusRelation = 5;
constexpr int64_t kKnnRelation = 6;
constexpr int64_t kNumRelations = 7;
// [type u (20), type v (20), relation (7), min(|i-j|,10) (11), CA distance (1)]
constexpr int64_t kEdgeFeatureDim = 2 * kNumResidueTypes + kNumRelations + kMaxSequenceDistanceFeature + 1 + 1;  // 59

struct GraphOptions {
  double radius = 10.0;                  // Angstrom, CA-CA, strict <
  int64_t knn = 10;                      // nearest neighbours per node before the separation filter
  int64_t max_radius_neighbors = 32;     // cap on radius neighbours per target node
  int64_t min_sequence_separation = 5;   // radius/KNN edges need |i - j| >= this
  int64_t num_angle_bins = 8;            // line-graph relations
};

// Residue graph. Node n is the n-th residue of the chain that has a CA atom;
// i, j, "sequence separation" and the sequential offsets below are NODE indices
// (residues without CA are dropped first and the rest renumbered), which is
// what the reference (torchdrug) sees when it reads the same PDB file, since
// unobserved residues never exist there.
//
// Edge (u, v, r) is a message from node u (source) to node v (target): the
// relational convolution sums x_u into slot (v, r).
struct ResidueGraph {
  int64_t num_nodes = 0;
  torch::Tensor node_residue;   // [N] int64: residue index in the chain for each node
  torch::Tensor positions;      // [N, 3] float32 CA coordinates
  torch::Tensor residue_type;   // [N] int64 in 0..20 (20 = unknown)
  torch::Tensor node_features;  // [N, 21] float32 one-hot residue type
  torch::Tensor edges;          // [E, 3] int64 (u, v, relation), sequential then radius then KNN
  torch::Tensor edge_features;  // [E, 59] float32
  int64_t num_sequential_edges = 0, num_radius_edges = 0, num_knn_edges = 0;
};

// Spatial line graph: one node per residue-graph edge. For residue j, each
// incoming edge a = (k -> j) and each outgoing edge b = (j -> i) give the line
// edge (a, b, bin) where bin = min(floor(theta / pi * bins), bins - 1) and
// theta is the angle between (x_i - x_j) and (x_k - x_j) (0 when either
// vector is zero, e.g. for self loops).
struct LineGraph {
  int64_t num_nodes = 0;  // = number of residue-graph edges
  torch::Tensor edges;    // [E_line, 3] int64 (a, b, angle bin)
};

// GearNet residue type (0..19 in GLY ALA SER PRO VAL THR CYS ILE LEU ASN ASP
// GLN LYS GLU MET HIS PHE ARG TYR TRP order, 20 = unknown) of a one-letter code.
int64_t residue_type_index(char one_letter);

ResidueGraph build_residue_graph(const ChainStructure& chain, const GraphOptions& options = {});

// Builds the residue graph from nodes given directly (positions [N, 3],
// residue types [N] in 0..20), for hand-made test graphs.
ResidueGraph build_residue_graph(const torch::Tensor& positions, const torch::Tensor& residue_type,
                                 const GraphOptions& options = {});

LineGraph build_line_graph(const ResidueGraph& graph, int64_t num_angle_bins = 8);

}  // namespace sapling::gearnet
