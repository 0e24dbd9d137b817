// GearNet graphs of real PSICOV chains against an independent brute-force construction, and embedding a real chain.
#include <catch2/catch.hpp>

#include <chrono>
#include <iostream>

#include "graph.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::gearnet;

namespace {

std::vector<std::filesystem::path> psicov_chain_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(sapling::test::data_path("psicov")))
    if (entry.path().string().size() > 13 &&
        entry.path().string().compare(entry.path().string().size() - 13, 13, ".chain.pdb.gz") == 0)
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// [N, N] bool adjacency (row = target v, column = source u) of one relation.
torch::Tensor adjacency(const ResidueGraph& g, int64_t relation) {
  torch::Tensor a = torch::zeros({g.num_nodes, g.num_nodes}, torch::kInt64);
  const auto e = g.edges;
  const auto mask = e.select(1, 2) == relation;
  const auto u = e.select(1, 0).masked_select(mask), v = e.select(1, 1).masked_select(mask);
  a.index_put_({v, u}, torch::ones_like(u), /*accumulate=*/true);
  return a;
}

}  // namespace

// Brute force with dense [N, N] tensors, straight from MODELS.md (defaults:
// radius 10, cap 32 counted over all non-self neighbours in node order before
// the |i-j| >= 5 filter, 10 nearest then the filter). Squared distances are
// float32 dx*dx + dy*dy + dz*dz like the plugin, so borderline pairs agree.
TEST_CASE("gearnet graphs of all PSICOV chains match a brute-force construction", "[gearnet][graph][real]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto files = psicov_chain_files();
  REQUIRE(files.size() >= 50);
  int64_t total_nodes = 0, total_edges = 0, total_line = 0, max_radius_in = 0, capped_nodes = 0;
  double build_seconds = 0;
  for (const auto& file : files) {
    const auto chains = read_structure(file);
    REQUIRE(chains.size() == 1);
    const ChainStructure& chain = chains[0];
    INFO(file.filename().string() << " length " << chain.length());
    const auto t0 = std::chrono::steady_clock::now();
    const ResidueGraph g = build_residue_graph(chain);
    const LineGraph line = build_line_graph(g, 8);
    build_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    const auto ca = chain.coords.select(1, kCA);
    const auto observed = torch::isfinite(ca).all(1) & chain.observed;
    const auto pos = ca.index({observed});
    const int64_t n = pos.size(0);
    REQUIRE(g.num_nodes == n);
    const auto dx = pos.select(1, 0).unsqueeze(1) - pos.select(1, 0).unsqueeze(0);
    const auto dy = pos.select(1, 1).unsqueeze(1) - pos.select(1, 1).unsqueeze(0);
    const auto dz = pos.select(1, 2).unsqueeze(1) - pos.select(1, 2).unsqueeze(0);
    const auto d2 = dx * dx + dy * dy + dz * dz;  // [v, u]
    const auto index = torch::arange(n);
    const auto separation = (index.unsqueeze(1) - index.unsqueeze(0)).abs();
    const auto not_self = ~torch::eye(n, torch::kBool);

    int64_t sequential = 0;
    for (int64_t d = -2; d <= 2; ++d) sequential += std::max<int64_t>(n - std::abs(d), 0);
    CHECK(g.num_sequential_edges == sequential);

    const auto within = (d2 < 100.0f) & not_self;
    const auto rank = within.to(torch::kInt64).cumsum(1);
    const auto radius = within & (rank <= 32) & (separation >= 5);
    capped_nodes += (within.sum(1) > 32).sum().item<int64_t>();  // nodes where the cap drops neighbours
    CHECK(g.num_radius_edges == radius.sum().item<int64_t>());
    CHECK(torch::equal(adjacency(g, kRadiusRelation), radius.to(torch::kInt64)));

    const auto masked = d2.masked_fill(~not_self, std::numeric_limits<float>::infinity());
    const auto order = std::get<1>(masked.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
    const auto nearest = order.narrow(1, 0, std::min<int64_t>(10, std::max<int64_t>(n - 1, 0)));
    torch::Tensor knn = torch::zeros({n, n}, torch::kInt64);
    knn.scatter_(1, nearest, 1);
    knn = knn * (separation >= 5).to(torch::kInt64);
    CHECK(g.num_knn_edges == knn.sum().item<int64_t>());
    CHECK(torch::equal(adjacency(g, kKnnRelation), knn));

    // Line graph size: sum over residues of in-degree x out-degree.
    const auto in_degree = torch::bincount(g.edges.select(1, 1), {}, n);
    const auto out_degree = torch::bincount(g.edges.select(1, 0), {}, n);
    CHECK(line.edges.size(0) == (in_degree * out_degree).sum().item<int64_t>());
    CHECK(line.edges.select(1, 2).max().item<int64_t>() <= 7);

    total_nodes += n;
    total_edges += g.edges.size(0);
    total_line += line.edges.size(0);
    max_radius_in = std::max(max_radius_in, adjacency(g, kRadiusRelation).sum(1).max().item<int64_t>());
  }
  std::cout << "gearnet graphs: " << files.size() << " PSICOV chains, " << total_nodes << " nodes, " << total_edges
            << " edges, " << total_line << " line-graph edges, max radius in-degree " << max_radius_in << ", "
            << capped_nodes << " nodes with > 32 neighbours within 10 A (cap binding), built in "
            << build_seconds << " s\n";
}

TEST_CASE("gearnet embeds a real chain: [L, 3072], zero rows where CA is missing", "[gearnet][model][real]") {
  SAPLING_REQUIRE_DATA("psicov");
  test::load_build_plugins();
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  torch::manual_seed(0);
  auto encoder = entry.factory(Options::defaults(entry.schema));
  const auto chains = read_structure(sapling::test::data_path("psicov") / "1a3a.chain.pdb.gz");
  REQUIRE(!chains.empty());
  const ChainStructure& chain = chains[0];
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const auto emb = encoder->embed(chain);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(emb.sizes() == torch::IntArrayRef({chain.length(), 3072}));
  const auto has_ca = torch::isfinite(chain.coords.select(1, kCA)).all(1) & chain.observed;
  CHECK(torch::equal(emb.abs().sum(1) > 0, has_ca));
  CHECK(torch::isfinite(emb).all().item<bool>());
  std::cout << "gearnet embed 1a3a (" << chain.length() << " residues, " << has_ca.sum().item<int64_t>()
            << " with CA): " << seconds << " s on CPU\n";
}
