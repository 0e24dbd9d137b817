// GearNet graph construction: edge counts per relation, edge features and line-graph angles against hand computations.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "graph.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::gearnet;

namespace {

// A chain whose residue `i` has its CA at ca[i]; a NaN CA means "no CA" (observed false).
ChainStructure hand_chain(const std::string& sequence, const std::vector<std::array<float, 3>>& ca) {
  ChainStructure c;
  c.entry = "hand";
  c.chain = "A";
  c.sequence = sequence;
  const int64_t n = static_cast<int64_t>(sequence.size());
  c.coords = torch::full({n, kNumBackboneAtoms, 3}, std::nanf(""));
  for (int64_t i = 0; i < n; ++i)
    for (int d = 0; d < 3; ++d) c.coords[i][kCA][d] = ca[i][d];
  c.observed = torch::isfinite(c.coords.select(1, kCA)).all(1);
  c.bfactor = torch::full({n}, std::nanf(""));
  return c;
}

std::map<int64_t, int64_t> relation_counts(const ResidueGraph& g) {
  std::map<int64_t, int64_t> counts;
  for (int64_t k = 0; k < g.edges.size(0); ++k) ++counts[g.edges[k][2].item<int64_t>()];
  return counts;
}

// Edges of one relation as sorted "u->v" text (readable when a check fails).
std::string edge_set(const ResidueGraph& g, int64_t relation) {
  std::multiset<std::pair<int64_t, int64_t>> pairs;
  for (int64_t k = 0; k < g.edges.size(0); ++k)
    if (g.edges[k][2].item<int64_t>() == relation)
      pairs.insert({g.edges[k][0].item<int64_t>(), g.edges[k][1].item<int64_t>()});
  std::string out;
  for (const auto& [u, v] : pairs) out += std::to_string(u) + "->" + std::to_string(v) + " ";
  return out;
}

int64_t find_edge(const ResidueGraph& g, int64_t u, int64_t v, int64_t r) {
  for (int64_t k = 0; k < g.edges.size(0); ++k)
    if (g.edges[k][0].item<int64_t>() == u && g.edges[k][1].item<int64_t>() == v && g.edges[k][2].item<int64_t>() == r)
      return k;
  return -1;
}

}  // namespace

TEST_CASE("gearnet residue types follow torchdrug's residue2id order", "[gearnet][graph]") {
  const std::string order = "GASPVTCILNDQKEMHFRYW";
  for (int64_t i = 0; i < 20; ++i) CHECK(residue_type_index(order[i]) == i);
  CHECK(residue_type_index('X') == 20);
  CHECK(residue_type_index('B') == 20);
  CHECK(residue_type_index('w') == 19);
}

// Hand computation. Nine residues "GAXWCDEFK"; residue 4 (C) has no CA, so the
// nodes are residues 0 1 2 3 5 6 7 8 -> node n = 0..7, types G A X W D E F K,
// CA of node n at (3n, 0, 0): node distance = 3 |n - m| Angstrom.
// Options: radius 10 (=> |n - m| <= 3), knn 3, at most 2 radius neighbours,
// minimum separation 2.
// * Sequential: offsets -2..2 give 6, 7, 8, 7, 6 edges (relations 0..4) = 34.
// * Radius (cap counted over all neighbours in node order, then |n-m| >= 2):
//   v=0: first two of {1,2,3} = {1,2} -> keep 2            (1 edge)
//   v=1: first two of {0,2,3,4} = {0,2} -> none            (0)
//   v=2: {0,1} -> keep 0                                   (1)
//   v=3: {0,1}; v=4: {1,2}; v=5: {2,3}; v=6: {3,4}; v=7: {4,5} -> all kept (2 each)
//   = 12 edges. (Filtering before the cap would give v=1 the edges 3->1, 4->1.)
// * KNN, 3 nearest (ties -> lower index), then |n-m| >= 2:
//   v=0: {1,2,3} -> 2,3; v=1: {0,2,3} -> 3; v=2: {1,3,0} -> 0; v=3: {2,4,1} -> 1;
//   v=4: {3,5,2} -> 2; v=5: {4,6,3} -> 3; v=6: {5,7,4} -> 4; v=7: {6,5,4} -> 5,4
//   = 10 edges.
TEST_CASE("gearnet graph on a hand-made chain matches the hand computation", "[gearnet][graph]") {
  std::vector<std::array<float, 3>> ca;
  int64_t node = 0;
  for (int r = 0; r < 9; ++r) {
    if (r == 4) {
      ca.push_back({std::nanf(""), std::nanf(""), std::nanf("")});
      continue;
    }
    ca.push_back({3.0f * node++, 0, 0});
  }
  const ChainStructure chain = hand_chain("GAXWCDEFK", ca);
  GraphOptions options;
  options.radius = 10;
  options.knn = 3;
  options.max_radius_neighbors = 2;
  options.min_sequence_separation = 2;
  const ResidueGraph g = build_residue_graph(chain, options);

  REQUIRE(g.num_nodes == 8);
  CHECK(torch::equal(g.node_residue, torch::tensor({0, 1, 2, 3, 5, 6, 7, 8}, torch::kInt64)));
  CHECK(torch::equal(g.residue_type, torch::tensor({0, 1, 20, 19, 10, 13, 16, 12}, torch::kInt64)));
  CHECK(g.node_features.sizes() == torch::IntArrayRef({8, 21}));
  CHECK(g.node_features[2][20].item<float>() == 1.0f);  // X -> unknown slot
  CHECK(g.node_features.sum().item<float>() == 8.0f);

  CHECK(g.num_sequential_edges == 34);
  CHECK(g.num_radius_edges == 12);
  CHECK(g.num_knn_edges == 10);
  REQUIRE(g.edges.size(0) == 56);
  const auto counts = relation_counts(g);
  CHECK(counts.at(0) == 6);
  CHECK(counts.at(1) == 7);
  CHECK(counts.at(2) == 8);
  CHECK(counts.at(3) == 7);
  CHECK(counts.at(4) == 6);
  CHECK(counts.at(5) == 12);
  CHECK(counts.at(6) == 10);

  // Concatenation order: sequential (by offset, then source), radius, KNN.
  CHECK(g.edges[0][0].item<int64_t>() == 2);  // offset -2: 2 -> 0
  CHECK(g.edges[0][1].item<int64_t>() == 0);
  CHECK(g.edges[34][2].item<int64_t>() == 5);
  CHECK(g.edges[46][2].item<int64_t>() == 6);
  // Sequential edge u -> u + d carries relation d + 2.
  CHECK(find_edge(g, 3, 4, 3) >= 0);
  CHECK(find_edge(g, 4, 3, 1) >= 0);
  CHECK(find_edge(g, 5, 5, 2) >= 0);

  // Sorted by (u, v).
  CHECK(edge_set(g, 5) == "0->2 0->3 1->3 1->4 2->0 2->4 2->5 3->5 3->6 4->6 4->7 5->7 ");
  CHECK(edge_set(g, 6) == "0->2 1->3 2->0 2->4 3->0 3->1 3->5 4->6 4->7 5->7 ");

  // Edge features: [type u 0..19 | type v 20..39 | relation 40..46 | min(|i-j|,10) 47..57 | distance 58].
  REQUIRE(g.edge_features.sizes() == torch::IntArrayRef({56, 59}));
  {
    // First edge 2 -> 0 (offset -2): u is X (unknown -> GLY 0), v is G.
    const auto f = g.edge_features[0];
    torch::Tensor expected = torch::zeros({59});
    expected[0] = 1;
    expected[20 + 0] = 1;
    expected[40 + 0] = 1;
    expected[47 + 2] = 1;
    expected[58] = 6.0;
    CHECK(torch::allclose(f, expected));
  }
  {
    // KNN edge 3 -> 0: u = W (19), v = G (0), relation 6, |i-j| = 3, 9 Angstrom.
    const int64_t k = find_edge(g, 3, 0, 6);
    REQUIRE(k >= 0);
    torch::Tensor expected = torch::zeros({59});
    expected[19] = 1;
    expected[20 + 0] = 1;
    expected[40 + 6] = 1;
    expected[47 + 3] = 1;
    expected[58] = 9.0;
    CHECK(torch::allclose(g.edge_features[k], expected));
  }
  {
    // Self loop 7 -> 7: K (12), relation 2, separation 0, distance 0.
    const int64_t k = find_edge(g, 7, 7, 2);
    REQUIRE(k >= 0);
    torch::Tensor expected = torch::zeros({59});
    expected[12] = 1;
    expected[20 + 12] = 1;
    expected[40 + 2] = 1;
    expected[47 + 0] = 1;
    CHECK(torch::allclose(g.edge_features[k], expected));
  }
  // Each row: exactly four one-hot ones.
  CHECK(torch::equal(g.edge_features.narrow(1, 0, 58).sum(1), torch::full({56}, 4.0f)));

  // Line graph on a straight line: all angles are 0 or pi (pi -> last bin, 7).
  // Brute force: a -> b for every pair with target(a) == source(b).
  const LineGraph line = build_line_graph(g, 8);
  int64_t expected_line = 0, expected_opposite = 0;
  for (int64_t a = 0; a < 56; ++a)
    for (int64_t b = 0; b < 56; ++b) {
      if (g.edges[a][1].item<int64_t>() != g.edges[b][0].item<int64_t>()) continue;
      ++expected_line;
      const int64_t k = g.edges[a][0].item<int64_t>(), j = g.edges[a][1].item<int64_t>(),
                    i = g.edges[b][1].item<int64_t>();
      if ((i - j) * (k - j) < 0) ++expected_opposite;  // on opposite sides of j
    }
  CHECK(line.num_nodes == 56);
  CHECK(line.edges.size(0) == expected_line);
  const auto bins = line.edges.select(1, 2);
  CHECK((bins == 7).sum().item<int64_t>() == expected_opposite);
  CHECK(((bins == 0) | (bins == 7)).all().item<bool>());
}

// Three nodes at (0,0,0), (1,0,0), (1,1,0), sequential edges only (9 edges, each
// node has 3 in and 3 out => 27 line edges). Angles by hand:
// at node 1, directions to 0 and 2 are 90 degrees apart -> bin 4 for (k,i) = (0,2), (2,0);
// at nodes 0 and 2 the other two nodes are 45 degrees apart -> bin 2 (two each);
// every other pair has a zero vector (self loop) or the same direction -> bin 0.
TEST_CASE("gearnet line graph angle bins match a hand computation", "[gearnet][graph]") {
  const auto positions = torch::tensor({0.f, 0.f, 0.f, 1.f, 0.f, 0.f, 1.f, 1.f, 0.f}).view({3, 3});
  GraphOptions options;
  options.radius = 0.5;
  options.knn = 0;
  const ResidueGraph g = build_residue_graph(positions, torch::tensor({0, 1, 2}, torch::kInt64), options);
  REQUIRE(g.edges.size(0) == 9);
  const LineGraph line = build_line_graph(g, 8);
  REQUIRE(line.edges.size(0) == 27);
  const auto bins = line.edges.select(1, 2);
  CHECK((bins == 0).sum().item<int64_t>() == 21);
  CHECK((bins == 2).sum().item<int64_t>() == 4);
  CHECK((bins == 4).sum().item<int64_t>() == 2);
  // The specific 90-degree pairs: a = (0 -> 1), b = (1 -> 2) and a = (2 -> 1), b = (1 -> 0).
  const auto edge_index = [&](int64_t u, int64_t v) {
    for (int64_t k = 0; k < 9; ++k)
      if (g.edges[k][0].item<int64_t>() == u && g.edges[k][1].item<int64_t>() == v) return k;
    return int64_t{-1};
  };
  const auto bin_of = [&](int64_t a, int64_t b) {
    for (int64_t m = 0; m < 27; ++m)
      if (line.edges[m][0].item<int64_t>() == a && line.edges[m][1].item<int64_t>() == b)
        return line.edges[m][2].item<int64_t>();
    return int64_t{-1};
  };
  CHECK(bin_of(edge_index(0, 1), edge_index(1, 2)) == 4);
  CHECK(bin_of(edge_index(2, 1), edge_index(1, 0)) == 4);
  CHECK(bin_of(edge_index(0, 1), edge_index(1, 0)) == 0);
  CHECK(bin_of(edge_index(2, 0), edge_index(0, 1)) == 2);
  CHECK(bin_of(edge_index(1, 1), edge_index(1, 2)) == 0);
}

TEST_CASE("gearnet graph rejects malformed chains with a clear error", "[gearnet][graph]") {
  ChainStructure bad;
  bad.entry = "broken";
  bad.chain = "B";
  bad.sequence = "GAG";
  bad.coords = torch::zeros({2, 5, 3});
  CHECK_THROWS_WITH(build_residue_graph(bad), Catch::Contains("broken:B") && Catch::Contains("[3, 5, 3]"));
  // No residue with a CA: an empty graph, not a crash.
  ChainStructure empty = bad;
  empty.coords = torch::full({3, 5, 3}, std::nanf(""));
  const ResidueGraph g = build_residue_graph(empty);
  CHECK(g.num_nodes == 0);
  CHECK(g.edges.size(0) == 0);
  CHECK(build_line_graph(g).edges.size(0) == 0);
}
