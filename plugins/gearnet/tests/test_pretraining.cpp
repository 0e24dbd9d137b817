// GearNet multiview contrast: seeded crops and edge masks, a finite loss that training lowers, and `sapling pretrain-pgnn`.
#include <ATen/CPUGeneratorImpl.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>

#include "multiview_contrast.hpp"
#include "sapling/dataset.hpp"
#include "sapling/files.hpp"
#include "sapling/pretraining.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

using namespace sapling;
using namespace sapling::gearnet;

namespace {

ChainStructure psicov_chain(const std::string& name) {
  const auto chains = read_structure(sapling::test::data_path("psicov") / (name + ".chain.pdb.gz"));
  REQUIRE(chains.size() == 1);
  return chains[0];
}

std::shared_ptr<StructureEncoder> tiny_gearnet(std::vector<int64_t> dims) {
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  Options options = Options::defaults(entry.schema);
  options.set("hidden_dims", std::move(dims));
  return entry.factory(options);
}

std::shared_ptr<StructurePretrainingObjective> contrast_objective() {
  const auto& entry = StructurePretrainingRegistry::instance().find("gearnet_multiview_contrast");
  return entry.factory(Options::defaults(entry.schema));
}

}  // namespace

TEST_CASE("multiview crops and edge masks are seeded and follow the GearNet defaults", "[gearnet][pretrain]") {
  SAPLING_REQUIRE_DATA("psicov");
  const ChainNodes nodes = chain_nodes(psicov_chain("1a3a"));
  const int64_t n = nodes.positions.size(0);
  REQUIRE(n > 100);
  auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7),
       g3 = at::detail::createCPUGenerator(8);

  const torch::Tensor sub1 = subsequence_crop(n, 50, g1), sub2 = subsequence_crop(n, 50, g2);
  CHECK(torch::equal(sub1, sub2));
  REQUIRE(sub1.size(0) == 50);
  CHECK(torch::equal(sub1, torch::arange(sub1[0].item<int64_t>(), sub1[0].item<int64_t>() + 50)));
  CHECK(subsequence_crop(20, 50, g1).size(0) == 20);

  const torch::Tensor space1 = subspace_crop(nodes.positions, 15.0, 15, g1),
                      space2 = subspace_crop(nodes.positions, 15.0, 15, g2);
  CHECK(torch::equal(space1, space2));
  CHECK(space1.size(0) >= 15);
  // Every kept node lies within 15 A of some kept node (the centre), and the
  // crop is exactly the 15 A ball around one of them.
  bool found_centre = false;
  for (int64_t c = 0; c < space1.size(0) && !found_centre; ++c) {
    const torch::Tensor d = (nodes.positions - nodes.positions[space1[c]]).pow(2).sum(1).sqrt();
    found_centre = torch::equal(torch::nonzero(d < 15.0).flatten(), space1);
  }
  CHECK(found_centre);

  const ResidueGraph graph = build_residue_graph(nodes.positions, nodes.residue_type);
  const ResidueGraph m1 = mask_edges(graph, 0.15, g1), m2 = mask_edges(graph, 0.15, g2), m3 = mask_edges(graph, 0.15, g3);
  const int64_t e = graph.edges.size(0);
  CHECK(m1.edges.size(0) == e - static_cast<int64_t>(0.15 * e));
  CHECK(torch::equal(m1.edges, m2.edges));
  CHECK(torch::equal(m1.edge_features, m2.edge_features));
  CHECK(!torch::equal(m1.edges, m3.edges));
  CHECK(m1.num_sequential_edges + m1.num_radius_edges + m1.num_knn_edges == m1.edges.size(0));
  std::cout << "crops of 1a3a (" << n << " nodes): subsequence [" << sub1[0].item<int64_t>() << ", "
            << sub1[-1].item<int64_t>() << "], subspace " << space1.size(0) << " nodes, edge mask " << e << " -> "
            << m1.edges.size(0) << " edges\n";
}

TEST_CASE("merged view graphs give the same per-graph features as separate graphs", "[gearnet][pretrain]") {
  SAPLING_REQUIRE_DATA("psicov");
  torch::manual_seed(1);
  GearNetOptions options;
  options.hidden_dims = {8, 8};
  GearNetEncoder encoder(options);
  encoder.eval();
  auto gen = at::detail::createCPUGenerator(2);
  std::vector<ChainNodes> chains{chain_nodes(psicov_chain("1aap")), chain_nodes(psicov_chain("1c9o"))};
  const BatchView view = make_view(chains, ContrastOptions{}, options.graph, gen);
  torch::NoGradGuard no_grad;
  const ResidueGraph merged = merge_graphs(view.graphs);
  const GearNetOutput together = encoder.forward(encoder.prepare(merged));
  int64_t offset = 0;
  double max_diff = 0;
  for (const auto& g : view.graphs) {
    const GearNetOutput alone = encoder.forward(encoder.prepare(g));
    max_diff = std::max(max_diff, test::scaled_max_diff(together.node_feature.slice(0, offset, offset + g.num_nodes),
                                                        alone.node_feature));
    offset += g.num_nodes;
  }
  std::cout << "merged vs separate view graphs (eval mode): scaled max diff " << max_diff << "\n";
  CHECK(max_diff < 1e-5);
}

TEST_CASE("multiview contrast loss is finite, reproducible and decreases with training", "[gearnet][pretrain][real]") {
  SAPLING_REQUIRE_DATA("psicov");
  test::load_build_plugins();
  std::vector<ChainStructure> batch;
  for (const char* name : {"1aap", "1c9o", "1vfy", "1cc8", "1kw4", "1bdo"}) batch.push_back(psicov_chain(name));

  auto run = [&](int steps, std::vector<double>& curve, double& fixed_before, double& fixed_after) {
    torch::manual_seed(0);
    auto encoder = tiny_gearnet({16, 16});
    auto objective = contrast_objective();
    objective->attach(encoder);
    encoder->train();
    objective->train();
    std::vector<torch::Tensor> params = encoder->parameters();
    for (const auto& p : objective->parameters()) params.push_back(p);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-3));
    // The loss on fixed views (same seed), before and after, removes the
    // noise of fresh random views from the comparison.
    auto fixed_loss = [&] {
      torch::NoGradGuard no_grad;
      auto g = at::detail::createCPUGenerator(1234);
      return objective->loss(batch, g).item<double>();
    };
    fixed_before = fixed_loss();
    auto generator = at::detail::createCPUGenerator(0);
    for (int s = 0; s < steps; ++s) {
      adam.zero_grad();
      torch::Tensor loss = objective->loss(batch, generator);
      curve.push_back(loss.item<double>());
      loss.backward();
      adam.step();
    }
    fixed_after = fixed_loss();
  };
  std::vector<double> curve, again;
  double before = 0, after = 0, before2 = 0, after2 = 0;
  run(20, curve, before, after);
  run(3, again, before2, after2);
  std::cout << "multiview contrast, 6 PSICOV chains, GearNet-Edge [16,16], Adam 1e-3: loss";
  for (double v : curve) std::cout << " " << v;
  std::cout << "\n  fixed-view loss " << before << " -> " << after << " (log 6 = " << std::log(6.0) << ")\n";
  for (double v : curve) REQUIRE(std::isfinite(v));
  CHECK(after < before);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += curve[i] / 5, last += curve[curve.size() - 5 + i] / 5;
  CHECK(last < first);
  // Same seeds, same views and initialisation: the same losses.
  CHECK(before2 == before);
  for (size_t i = 0; i < again.size(); ++i) CHECK(again[i] == Approx(curve[i]).epsilon(1e-6));
}

TEST_CASE("the objective refuses batches without negatives and unattached use", "[gearnet][pretrain]") {
  SAPLING_REQUIRE_DATA("psicov");
  test::load_build_plugins();
  auto objective = contrast_objective();
  auto g = at::detail::createCPUGenerator(0);
  std::vector<ChainStructure> one{psicov_chain("1aap")};
  CHECK_THROWS_WITH(objective->loss(one, g), Catch::Contains("attach()"));
  objective->attach(tiny_gearnet({8}));
  CHECK_THROWS_WITH(objective->loss(one, g), Catch::Contains("at least 2 chains"));
}

TEST_CASE("sapling pretrain-pgnn writes metrics and loadable weights", "[gearnet][pretrain][cli]") {
  SAPLING_REQUIRE_DATA("psicov");
  test::load_build_plugins();
  const auto dir = test::temp_dir("pgnn-pretrain");
  std::string inputs;
  for (const char* name : {"1aap", "1c9o", "1vfy", "1cc8"})
    inputs += " " + (sapling::test::data_path("psicov") / (std::string(name) + ".chain.pdb.gz")).string();
  const auto prepared = test::run_command(test::sapling_exe() + " prepare" + inputs + " --out " + (dir / "ds").string());
  REQUIRE(prepared.exit_code == 0);
  const auto trained = test::run_command(
      test::sapling_exe() + " pretrain-pgnn --dataset " + (dir / "ds").string() + " --split all --out " +
      (dir / "w.safetensors").string() + " --steps 3 --batch-size 4 --set pgnn.hidden_dims=[8,8] --metrics " +
      (dir / "m.jsonl").string() + " --tensorboard " + (dir / "tb").string() + " --threads 2");
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  // One event file with the loss scalars (TensorBoard's reader checks them in tests/interop for `sapling train`).
  std::vector<std::filesystem::path> events;
  for (const auto& e : std::filesystem::directory_iterator(dir / "tb")) events.push_back(e.path());
  REQUIRE(events.size() == 1);
  CHECK(events[0].filename().string().rfind("events.out.tfevents.", 0) == 0);
  const auto event_bytes = sapling::read_file(events[0]);
  CHECK(event_bytes.find("brain.Event:2") != std::string::npos);
  CHECK(event_bytes.find("train/loss") != std::string::npos);
  std::ifstream metrics(dir / "m.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) {
    ++lines;
    CHECK(line.find("\"step\":" + std::to_string(lines)) != std::string::npos);
    CHECK(line.find("\"loss\":") != std::string::npos);
    CHECK(line.find("\"seconds\":") != std::string::npos);
  }
  CHECK(lines == 3);
  auto encoder = tiny_gearnet({8, 8});
  CHECK_NOTHROW(encoder->load_weights(dir / "w.safetensors"));

  // The same run from a recipe (kind = "pretrain-pgnn") gives the same losses; flags override the file, and the
  // old --encoder flag still works with a warning naming --pgnn.
  {
    std::ofstream recipe(dir / "pgnn.toml");
    recipe << "# The test's pretraining.\nkind = \"pretrain-pgnn\"\n[pgnn]\ncomponent = \"gearnet\"\nhidden_dims = [8, 8]\n"
              "[data]\ndataset = \"ds\"\nsplit = \"all\"\n[train]\nsteps = 5\nbatch_size = 4\n"
              "[output]\nweights = \"r.safetensors\"\nmetrics = \"r.jsonl\"\n";
  }
  const auto from_recipe = test::run_command(test::sapling_exe() + " pretrain-pgnn --recipe " + (dir / "pgnn.toml").string() +
                                             " --steps 3 --threads 2");
  INFO(from_recipe.output);
  REQUIRE(from_recipe.exit_code == 0);
  auto losses = [](const std::filesystem::path& file) {
    std::vector<std::string> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) out.push_back(line.substr(0, line.find(",\"seconds\"")));
    return out;
  };
  CHECK(losses(dir / "r.jsonl") == losses(dir / "m.jsonl"));
  const auto checked = test::run_command(test::sapling_exe() + " recipe check " + (dir / "pgnn.toml").string());
  CHECK(checked.exit_code == 0);
  const auto old_flag = test::run_command(test::sapling_exe() + " pretrain-pgnn --dataset " + (dir / "ds").string() +
                                          " --split all --out " + (dir / "o.safetensors").string() +
                                          " --steps 1 --batch-size 4 --encoder gearnet --pgnn-option hidden_dims=[8] --threads 2");
  INFO(old_flag.output);
  CHECK(old_flag.exit_code == 0);
  CHECK(old_flag.output.find("--encoder is now called --pgnn") != std::string::npos);
  CHECK(old_flag.output.find("--pgnn-option key=value is now called --set pgnn.key=value") != std::string::npos);

  const auto too_few = test::run_command(test::sapling_exe() + " pretrain-pgnn --dataset " + (dir / "ds").string() +
                                         " --split all --out " + (dir / "x.safetensors").string() + " --batch-size 8");
  CHECK(too_few.exit_code != 0);
  CHECK(too_few.output.find("fewer than --batch-size 8") != std::string::npos);
  std::filesystem::remove_all(dir);
}
