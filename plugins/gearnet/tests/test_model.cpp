// GearNet module: hand-checked aggregation, a naive loop re-implementation of the forward pass, weight I/O, embeddings, batch norm modes.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <set>

#include "model.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/safetensors.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::gearnet;

namespace {

// A small irregular chain: a helix-like curve so radius, KNN and all angle bins occur.
ChainStructure curved_chain(int64_t n, std::vector<int64_t> missing_ca = {}) {
  ChainStructure c;
  c.entry = "curve";
  c.chain = "A";
  const std::string letters = "GASPVTCILNDQKEMHFRYWX";
  for (int64_t i = 0; i < n; ++i) c.sequence += letters[(i * 5) % letters.size()];
  c.coords = torch::full({n, kNumBackboneAtoms, 3}, std::nanf(""));
  for (int64_t i = 0; i < n; ++i) {
    const double t = 1.7 * i;
    c.coords[i][kCA][0] = 2.3 * std::cos(t) + 0.002 * i * i;
    c.coords[i][kCA][1] = 2.3 * std::sin(t);
    c.coords[i][kCA][2] = 1.5 * i;
  }
  for (int64_t i : missing_ca) c.coords[i][kCA] = std::nanf("");
  c.observed = torch::isfinite(c.coords.select(1, kCA)).all(1);
  c.bfactor = torch::full({n}, std::nanf(""));
  return c;
}

const Registration<StructureEncoder>& gearnet_entry() {
  test::load_build_plugins();
  return StructureEncoderRegistry::instance().find("gearnet");
}

std::shared_ptr<StructureEncoder> make_encoder(Options options) { return gearnet_entry().factory(options); }

Options small_options(std::vector<int64_t> dims = {8, 8, 6}) {
  Options o = Options::defaults(gearnet_entry().schema);
  o.set("hidden_dims", dims);
  return o;
}

torch::Tensor batch_norm_eval(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x) {
  return (x - bn.running_mean) / torch::sqrt(bn.running_var + bn.options.eps()) * bn.weight + bn.bias;
}

// Loop-over-edges relational convolution (no sparse products): the reference
// the module is checked against.
torch::Tensor naive_conv(RelationalConvImpl& conv, const torch::Tensor& x, const torch::Tensor& edges,
                         int64_t num_targets) {
  const int64_t in = x.size(1), R = conv.num_relations;
  torch::Tensor agg = torch::zeros({num_targets, R * in});
  for (int64_t k = 0; k < edges.size(0); ++k) {
    const int64_t src = edges[k][0].item<int64_t>(), dst = edges[k][1].item<int64_t>(), r = edges[k][2].item<int64_t>();
    agg[dst].narrow(0, r * in, in) += x[src];
  }
  return torch::relu(batch_norm_eval(*conv.batch_norm, conv.linear(agg) + conv.self_loop(x)));
}

// Line edges by brute force over edge pairs, angle bin in double precision.
torch::Tensor naive_line_edges(const ResidueGraph& g, int64_t bins) {
  std::vector<int64_t> flat;
  const int64_t E = g.edges.size(0);
  const auto pos = g.positions.to(torch::kFloat64);
  for (int64_t j = 0; j < g.num_nodes; ++j)
    for (int64_t a = 0; a < E; ++a) {
      if (g.edges[a][1].item<int64_t>() != j) continue;
      for (int64_t b = 0; b < E; ++b) {
        if (g.edges[b][0].item<int64_t>() != j) continue;
        const auto v1 = pos[g.edges[b][1].item<int64_t>()] - pos[j];
        const auto v2 = pos[g.edges[a][0].item<int64_t>()] - pos[j];
        const double angle =
            std::atan2(torch::linalg_cross(v1, v2).norm().item<double>(), (v1 * v2).sum().item<double>());
        flat.insert(flat.end(), {a, b, std::min<int64_t>(static_cast<int64_t>(angle / M_PI * bins), bins - 1)});
      }
    }
  return torch::tensor(flat, torch::kInt64).view({-1, 3});
}

// GearNet-Edge forward written directly from MODELS.md with loops.
torch::Tensor naive_gearnet(GearNetEncoder& m, const ResidueGraph& g) {
  const int64_t bins = m.options().graph.num_angle_bins;
  const auto line = naive_line_edges(g, bins);
  torch::Tensor x = g.node_features, e = g.edge_features;
  std::vector<torch::Tensor> hiddens;
  for (int64_t i = 0; i < m.num_layers(); ++i) {
    auto& conv = *m.layers[i]->as<RelationalConvImpl>();
    torch::Tensor h = naive_conv(conv, x, g.edges, g.num_nodes);
    if (h.sizes() == x.sizes()) h = h + x;
    torch::Tensor eh = naive_conv(*m.edge_layers[i]->as<RelationalConvImpl>(), e, line, g.edges.size(0));
    const int64_t d = eh.size(1);
    torch::Tensor update = torch::zeros({g.num_nodes, kNumRelations * d});
    for (int64_t k = 0; k < g.edges.size(0); ++k)
      update[g.edges[k][1].item<int64_t>()].narrow(0, g.edges[k][2].item<int64_t>() * d, d) += eh[k];
    h = h + torch::relu(conv.linear(update));
    h = batch_norm_eval(*m.batch_norms[i]->as<torch::nn::BatchNorm1dImpl>(), h);
    hiddens.push_back(h);
    x = h;
    e = eh;
  }
  return torch::cat(hiddens, 1);
}

// Non-trivial running statistics and affine parameters, so a mis-wired batch norm shows.
void randomise_batch_norms(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& b : m.named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.5);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  }
  for (auto& p : m.named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
}

}  // namespace

// x = [[1,2],[3,4],[5,6]], two relations, edges (u -> v, r): (0->1,0) (2->1,0)
// (1->0,1) (0->1,1) (0->1,1). By hand: agg[0] = [0,0 | x1] = [0,0,3,4];
// agg[1] = [x0+x2 | 2 x0] = [6,8,2,4]; agg[2] = 0.
TEST_CASE("gearnet relational aggregation matches a hand computation", "[gearnet][model]") {
  RelationalConv conv(2, 1, 2, /*batch_norm=*/true);
  conv->eval();
  const auto x = torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).view({3, 2});
  const auto edges = torch::tensor({0, 1, 0, 2, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1}, torch::kInt64).view({5, 3});
  const auto op = scatter_matrix(edges.select(1, 1) * 2 + edges.select(1, 2), edges.select(1, 0), 3 * 2, 3);
  const auto agg = conv->aggregate(op, x);
  const auto expected = torch::tensor({0.f, 0.f, 3.f, 4.f, 6.f, 8.f, 2.f, 4.f, 0.f, 0.f, 0.f, 0.f}).view({3, 4});
  CHECK(torch::equal(agg, expected));

  // linear = [1, -1, 0.5, 0] + 0.25, self_loop = [1, 1] - 4, BN eval with
  // default statistics divides by sqrt(1 + 1e-5):
  // node 0: (0 - 0 + 1.5 + 0.25) + (3 - 4) = 0.75;  node 1: (6 - 8 + 1 + 0.25) + (7 - 4) = 2.25;
  // node 2: 0.25 + (11 - 4) = 7.25.
  {
    torch::NoGradGuard no_grad;
    conv->linear->weight.copy_(torch::tensor({1.f, -1.f, 0.5f, 0.f}).view({1, 4}));
    conv->linear->bias.fill_(0.25);
    conv->self_loop->weight.fill_(1);
    conv->self_loop->bias.fill_(-4);
  }
  const auto out = conv->forward(op, x);
  const auto want = torch::tensor({0.75f, 2.25f, 7.25f}).view({3, 1}) / std::sqrt(1.0f + 1e-5f);
  INFO("max diff " << (out - want).abs().max().item<double>());
  CHECK(torch::allclose(out, want, 1e-6, 1e-6));
}

TEST_CASE("gearnet-edge forward matches a loop implementation of MODELS.md", "[gearnet][model]") {
  torch::manual_seed(3);
  GearNetOptions options;
  options.hidden_dims = {6, 6, 5};
  GearNetEncoder model(options);
  model.eval();
  randomise_batch_norms(model);
  const ChainStructure chain = curved_chain(14, {5});
  const ResidueGraph g = build_residue_graph(chain, options.graph);
  INFO("edges " << g.edges.size(0) << " (seq " << g.num_sequential_edges << ", radius " << g.num_radius_edges
                << ", knn " << g.num_knn_edges << ")");
  REQUIRE(g.num_radius_edges > 0);
  REQUIRE(g.num_knn_edges > 0);
  torch::NoGradGuard no_grad;
  // Same line graph (as sorted (a, b, bin) rows) as the brute-force one.
  const auto sorted_rows = [](const torch::Tensor& t) {
    const auto key = (t.select(1, 0) * 100000 + t.select(1, 1)) * 100 + t.select(1, 2);
    return std::get<0>(key.sort());
  };
  const LineGraph line = build_line_graph(g, options.graph.num_angle_bins);
  const auto naive_line = naive_line_edges(g, options.graph.num_angle_bins);
  INFO("line edges " << line.edges.size(0) << " vs " << naive_line.size(0));
  REQUIRE(torch::equal(sorted_rows(line.edges), sorted_rows(naive_line)));
  const auto got = model.forward(model.prepare(g));
  const auto want = naive_gearnet(model, g);
  REQUIRE(got.node_feature.sizes() == want.sizes());
  const double diff = test::scaled_max_diff(got.node_feature, want);
  std::cout << "gearnet forward vs loop reference: scaled max diff " << diff << "\n";
  CHECK(diff < 1e-5);
  CHECK(torch::allclose(got.graph_feature, want.sum(0), 1e-4, 1e-4));

  // embed() places node rows at their residues and zeros residue 5 (no CA).
  const auto emb = model.embed(chain);
  REQUIRE(emb.sizes() == torch::IntArrayRef({14, 17}));
  CHECK(emb[5].abs().sum().item<float>() == 0.0f);
  CHECK(torch::allclose(emb.index_select(0, g.node_residue), got.node_feature));

  // Selected outputs.
  options.output = "last";
  GearNetEncoder last(options);
  CHECK(last.output_dim() == 5);
  options.output = "-2";
  CHECK(GearNetEncoder(options).output_dim() == 6);
  options.output = "3";
  CHECK_THROWS_WITH(GearNetEncoder(options), Catch::Contains("'output'") && Catch::Contains("\"3\""));
}

TEST_CASE("gearnet registry defaults: [L, 3072] embeddings with zero rows where CA is missing", "[gearnet][model]") {
  torch::manual_seed(0);
  auto encoder = make_encoder(Options::defaults(gearnet_entry().schema));
  CHECK(encoder->output_dim() == 3072);
  CHECK(!encoder->is_training());
  const ChainStructure chain = curved_chain(30, {0, 11, 29});
  torch::NoGradGuard no_grad;
  const auto emb = encoder->embed(chain);
  REQUIRE(emb.sizes() == torch::IntArrayRef({30, 3072}));
  for (int64_t i : {0, 11, 29}) CHECK(emb[i].abs().sum().item<float>() == 0.0f);
  CHECK((emb.abs().sum(1) > 0).sum().item<int64_t>() == 27);
  CHECK(torch::isfinite(emb).all().item<bool>());
  // Parameter names are the torchdrug state-dict keys.
  std::set<std::string> names;
  for (const auto& p : encoder->named_parameters()) names.insert(p.key());
  for (const auto& b : encoder->named_buffers()) names.insert(b.key());
  for (const char* key : {"layers.0.self_loop.weight", "layers.0.linear.weight", "layers.5.batch_norm.running_var",
                          "edge_layers.0.linear.weight", "edge_layers.5.batch_norm.num_batches_tracked",
                          "batch_norms.5.bias"})
    CHECK(names.count(key) == 1);
  CHECK(encoder->named_parameters()["layers.0.linear.weight"].sizes() == torch::IntArrayRef({512, 7 * 21}));
  CHECK(encoder->named_parameters()["edge_layers.0.linear.weight"].sizes() == torch::IntArrayRef({21, 8 * 59}));
  CHECK(encoder->named_parameters()["edge_layers.1.linear.weight"].sizes() == torch::IntArrayRef({512, 8 * 21}));
  // Plain GearNet has no edge layers.
  auto plain_options = Options::defaults(gearnet_entry().schema);
  plain_options.set("edge_feature", false);
  auto plain = make_encoder(plain_options);
  for (const auto& p : plain->named_parameters()) CHECK(p.key().rfind("edge_layers", 0) != 0);
  CHECK(plain->embed(chain).sizes() == torch::IntArrayRef({30, 3072}));
}

TEST_CASE("gearnet weights: save/load round trip and mismatches fail clearly", "[gearnet][model]") {
  const auto dir = test::temp_dir("gearnet");
  const auto file = dir / "gearnet.safetensors";
  torch::manual_seed(1);
  auto a = make_encoder(small_options());
  randomise_batch_norms(*a);
  a->save_weights(file);
  torch::manual_seed(2);
  auto b = make_encoder(small_options());
  const ChainStructure chain = curved_chain(20, {3});
  torch::NoGradGuard no_grad;
  CHECK(!torch::allclose(a->embed(chain), b->embed(chain)));
  b->load_weights(file);
  CHECK(torch::equal(a->embed(chain), b->embed(chain)));
  // The file holds exactly the state-dict keys (buffers included).
  const TensorStore store(file);
  CHECK(store.keys().size() == a->named_parameters().size() + a->named_buffers().size());
  CHECK(store.contains("batch_norms.2.num_batches_tracked"));

  // Through the `weights` option.
  auto c = make_encoder(small_options().set("weights", file.string()));
  CHECK(torch::equal(a->embed(chain), c->embed(chain)));

  // Wrong architecture: one error naming the file and the offending keys.
  auto other = make_encoder(small_options({8, 8}));
  CHECK_THROWS_AS(other->load_weights(file), Error);
  CHECK_THROWS_WITH(other->load_weights(file), Catch::Contains(file.string()) &&
                                                   Catch::Contains("unexpected 23 keys"));
  auto narrow = make_encoder(small_options({8, 8, 7}));
  CHECK_THROWS_WITH(narrow->load_weights(file), Catch::Contains("wrong shape") &&
                                                    Catch::Contains("layers.2.linear.weight (file [6, 56], model [7, 56])"));
  auto plain = make_encoder(small_options().set("edge_feature", false));
  CHECK_THROWS_WITH(plain->load_weights(file), Catch::Contains("unexpected") && Catch::Contains("edge_layers."));
  // A plain-GearNet file into GearNet-Edge: the edge layers are missing.
  plain->save_weights(dir / "plain.safetensors");
  CHECK_THROWS_WITH(a->load_weights(dir / "plain.safetensors"),
                    Catch::Contains("missing") && Catch::Contains("edge_layers.0.linear.weight"));
  CHECK_THROWS_AS(a->load_weights(dir / "absent.safetensors"), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gearnet batch norm: batch statistics in train mode, running statistics in eval", "[gearnet][model]") {
  torch::manual_seed(4);
  auto encoder = make_encoder(small_options());
  const ChainStructure chain = curved_chain(25, {7});
  torch::Tensor eval_before, train_out, eval_after;
  {
    torch::NoGradGuard no_grad;
    eval_before = encoder->embed(chain);
    CHECK(torch::equal(eval_before, encoder->embed(chain)));  // eval is deterministic, stats untouched
  }
  encoder->train();
  train_out = encoder->embed(chain);
  // Every concatenated column is a batch-norm output over the 24 nodes:
  // mean 0 and (biased) variance 1 with the initial affine parameters.
  auto observed = train_out.index_select(0, torch::nonzero(chain.observed).flatten());
  const auto mean = observed.mean(0), var = observed.var(0, /*unbiased=*/false);
  INFO("max |mean| " << mean.abs().max().item<double>() << ", max |var - 1| " << (var - 1).abs().max().item<double>());
  CHECK(mean.abs().max().item<double>() < 1e-4);
  CHECK((var - 1).abs().max().item<double>() < 1e-2);  // 1 - eps / var for small variances
  // Running statistics were updated once.
  auto buffers = encoder->named_buffers();
  CHECK(buffers["batch_norms.0.num_batches_tracked"].item<int64_t>() == 1);
  CHECK(buffers["edge_layers.1.batch_norm.num_batches_tracked"].item<int64_t>() == 1);
  CHECK(buffers["batch_norms.0.running_mean"].abs().sum().item<float>() > 0);
  // Gradients flow through both branches.
  train_out.pow(2).sum().backward();
  auto params = encoder->named_parameters();
  for (const char* key : {"layers.0.linear.weight", "edge_layers.0.linear.weight", "edge_layers.0.self_loop.weight",
                          "batch_norms.2.weight"}) {
    INFO(key);
    CHECK(params[key].grad().defined());
    CHECK(params[key].grad().abs().sum().item<float>() > 0);
  }
  encoder->eval();
  {
    torch::NoGradGuard no_grad;
    eval_after = encoder->embed(chain);
  }
  CHECK(!torch::allclose(eval_after, train_out, 1e-3, 1e-3));
  CHECK(!torch::allclose(eval_after, eval_before, 1e-5, 1e-5));  // running stats moved
  // A single residue cannot be batch-normalised in train mode: clear error.
  encoder->train();
  CHECK_THROWS_WITH(encoder->embed(curved_chain(1)), Catch::Contains("at least 2 residues"));
}

// Timing on a compact 343-residue chain (a serpentine path through a 7x7x7
// grid with 5 A spacing: ~30 CA within 10 A, like a globular protein).
// Hidden: run with `sapling_tests_gearnet "[benchmark]"`.
TEST_CASE("gearnet embedding timing on a compact chain", "[.][benchmark][gearnet]") {
  ChainStructure c;
  c.entry = "grid";
  c.chain = "A";
  const int64_t side = 7, n = side * side * side;
  c.coords = torch::full({n, kNumBackboneAtoms, 3}, std::nanf(""));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t z = i / (side * side), rest = i % (side * side);
    const int64_t y0 = rest / side, x0 = rest % side;
    const int64_t y = z % 2 ? side - 1 - y0 : y0, x = y0 % 2 ? side - 1 - x0 : x0;
    c.coords[i][kCA] = torch::tensor({5.0f * x, 5.0f * y, 5.0f * z});
    c.sequence += "GASPVTCILNDQKEMHFRYW"[i % 20];
  }
  c.observed = torch::ones({n}, torch::kBool);
  test::load_build_plugins();
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  auto encoder = entry.factory(Options::defaults(entry.schema));
  torch::NoGradGuard no_grad;
  auto t0 = std::chrono::steady_clock::now();
  const ResidueGraph g = build_residue_graph(c);
  const LineGraph line = build_line_graph(g);
  const double graph_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  const auto emb = encoder->embed(c);
  const double embed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "compact chain: " << n << " nodes, " << g.edges.size(0) << " edges, " << line.edges.size(0)
            << " line edges; graphs " << graph_s << " s, embed (graphs + forward) " << embed_s << " s, "
            << torch::get_num_threads() << " threads\n";
  CHECK(emb.sizes() == torch::IntArrayRef({n, 3072}));
}
