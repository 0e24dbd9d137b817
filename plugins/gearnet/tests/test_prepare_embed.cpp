// `sapling prepare --pgnn gearnet`: stored float16 embeddings equal a direct embed() of the same chains; weight policy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>

#include "sapling/dataset.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

using namespace sapling;

namespace {

const std::vector<std::string> kChains = {"1a3a", "1aap", "1c9o", "1vfy"};

std::string psicov_inputs() {
  std::string out;
  for (const auto& c : kChains) out += " " + (sapling::test::data_path("psicov") / (c + ".chain.pdb.gz")).string();
  return out;
}

// A BM5 receptor whose chain A has a residue without CA (44 residues, 43 observed).
std::string bm5_input() { return " " + (sapling::test::data_path("bm5") / "1FC2_r_b-matched.pdb.gz").string();
}

std::shared_ptr<StructureEncoder> small_gearnet() {
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  Options options = Options::defaults(entry.schema);
  options.set("hidden_dims", std::vector<int64_t>{32, 32});
  return entry.factory(options);
}

}  // namespace

TEST_CASE("prepare --pgnn gearnet stores the encoder's embeddings as float16", "[gearnet][prepare][cli]") {
  SAPLING_REQUIRE_DATA("psicov");
  SAPLING_REQUIRE_DATA("bm5");
  test::load_build_plugins();
  const auto dir = test::temp_dir("pgnn-embed");
  const auto weights = dir / "gearnet-small.safetensors";
  torch::manual_seed(3);
  small_gearnet()->save_weights(weights);

  const auto result = test::run_command(test::sapling_exe() + " prepare" + psicov_inputs() + bm5_input() + " --out " +
                                        (dir / "ds").string() + " --pgnn gearnet --pgnn-weights " + weights.string() +
                                        " --set pgnn.hidden_dims=[32,32] --threads 2"
                                        " --sequence seqres");  // the full sequence: rows of unobserved residues are zero
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK(result.output.find("pGNN gearnet") != std::string::npos);

  const StructureDataset dataset(dir / "ds");
  REQUIRE(dataset.size() > kChains.size());
  REQUIRE(dataset.has_embeddings());
  REQUIRE(dataset.embedding_dim() == 64);

  auto reference = small_gearnet();
  reference->load_weights(weights);
  reference->eval();
  torch::NoGradGuard no_grad;
  double max_diff = 0, max_relative = 0;
  int64_t unobserved_rows = 0;
  for (size_t i = 0; i < dataset.size(); ++i) {
    const auto& meta = dataset.metadata(i);
    const auto chains = read_structure(meta.source);
    const auto found = std::find_if(chains.begin(), chains.end(), [&](const ChainStructure& c) { return c.chain == meta.chain; });
    REQUIRE(found != chains.end());
    const ChainStructure& chain = *found;
    const torch::Tensor direct = reference->embed(chain);
    const torch::Tensor stored = dataset.embeddings(i);
    INFO(meta.entry << " " << meta.chain);
    REQUIRE(stored.scalar_type() == torch::kFloat16);
    REQUIRE(stored.sizes() == torch::IntArrayRef({meta.length, 64}));
    const torch::Tensor diff = (stored.to(torch::kFloat32) - direct).abs();
    max_diff = std::max(max_diff, diff.max().item<double>());
    // float16 keeps 11 significant bits: rounding error <= 2^-11 of the value.
    max_relative = std::max(max_relative, (diff / direct.abs().clamp_min(1e-3)).max().item<double>());
    CHECK((diff <= direct.abs() * std::ldexp(1.0, -11) + 1e-7).all().item<bool>());
    const torch::Tensor has_ca = torch::isfinite(chain.coords.select(1, kCA)).all(1) & chain.observed;
    unobserved_rows += (~has_ca).sum().item<int64_t>();
    CHECK(torch::equal(stored.to(torch::kFloat32).abs().sum(1) > 0, has_ca));
  }
  CHECK(unobserved_rows > 0);
  std::cout << "prepare --pgnn gearnet [32,32], " << dataset.size() << " chains: max |stored - embed()| = " << max_diff
            << ", max relative = " << max_relative << " (float16 bound 2^-11 = " << std::ldexp(1.0, -11) << "), "
            << unobserved_rows << " rows of residues without CA are zero\n";
  std::filesystem::remove_all(dir);
}

TEST_CASE("prepare --embed refuses random weights unless --allow-random-pgnn", "[gearnet][prepare][cli]") {
  SAPLING_REQUIRE_DATA("psicov");
  const auto dir = test::temp_dir("pgnn-random");
  const std::string base = test::sapling_exe() + " prepare" + psicov_inputs() + " --out " + (dir / "ds").string() +
                           " --pgnn gearnet --set pgnn.hidden_dims=[8]";
  const auto refused = test::run_command(base);
  INFO(refused.output);
  CHECK(refused.exit_code != 0);
  CHECK(refused.output.find("useless as alignment targets") != std::string::npos);
  CHECK(refused.output.find("--allow-random-pgnn") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "ds" / "index.json"));

  const auto allowed = test::run_command(base + " --allow-random-pgnn");
  INFO(allowed.output);
  CHECK(allowed.exit_code == 0);
  CHECK(StructureDataset(dir / "ds").embedding_dim() == 8);

  const auto typo = test::run_command(base + " --allow-random-pgnn --set pgnn.hidden_dim=[8]");
  INFO(typo.output);
  CHECK(typo.exit_code != 0);
  CHECK(typo.output.find("did you mean 'hidden_dims'") != std::string::npos);

  const auto no_embed = test::run_command(test::sapling_exe() + " prepare" + psicov_inputs() + " --out " +
                                          (dir / "ds2").string() + " --pgnn-weights x.safetensors");
  CHECK(no_embed.exit_code != 0);
  CHECK(no_embed.output.find("need --pgnn NAME") != std::string::npos);
  std::filesystem::remove_all(dir);
}

namespace {

const std::filesystem::path kBundledWeights = test::source_dir() / "datasets/models/gearnet_edge_mc_6x128.safetensors";

std::vector<ChainStructure> sample_chains() {
  std::vector<ChainStructure> chains;
  for (const auto& file : find_structure_files({test::source_dir() / "datasets/sample/psicov"}))
    for (auto& chain : read_structure(file)) chains.push_back(observed_residues(chain));
  return chains;
}

}  // namespace

TEST_CASE("gearnet takes its shapes from the weights file; a contradicting option is an error naming both",
          "[gearnet][weights]") {
  test::load_build_plugins();
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  Options options = Options::defaults(entry.schema);
  options.set("weights", kBundledWeights.string());
  const auto encoder = entry.factory(options);  // no hidden_dims: 6 x 128 from the file, concatenated
  CHECK(encoder->output_dim() == 6 * 128);

  options.set("hidden_dims", std::vector<int64_t>{512, 512, 512, 512, 512, 512});
  try {
    entry.factory(options);
    FAIL("a hidden_dims that contradicts the weights was accepted");
  } catch (const Error& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("hidden_dims = [512,512,512,512,512,512]") != std::string::npos);
    CHECK(message.find("[128,128,128,128,128,128]") != std::string::npos);
    CHECK(message.find("gearnet_edge_mc_6x128.safetensors") != std::string::npos);
  }
  // prepare --pgnn-weights alone now works with the bundled 6 x 128 file.
  const auto dir = test::temp_dir("pgnn-shapes");
  const auto r = test::run_command(test::sapling_exe() + " prepare " +
                                   test::quote(test::source_dir() / "datasets/sample/psicov/1aba.chain.pdb.gz") +
                                   " --out " + test::quote(dir / "ds") + " --pgnn gearnet --pgnn-weights " +
                                   test::quote(kBundledWeights));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("hidden_dims = [128,128,128,128,128,128] from the weights") != std::string::npos);
  CHECK(StructureDataset(dir / "ds").embedding_dim() == 768);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gearnet embed_batch (one disjoint graph) equals embed() chain by chain", "[gearnet][batch]") {
  test::load_build_plugins();
  const auto& entry = StructureEncoderRegistry::instance().find("gearnet");
  Options options = Options::defaults(entry.schema);
  options.set("weights", kBundledWeights.string());
  const auto encoder = entry.factory(options);
  const auto chains = sample_chains();
  REQUIRE(chains.size() >= 4);
  torch::NoGradGuard no_grad;
  const auto batched = encoder->embed_batch(chains);
  REQUIRE(batched.size() == chains.size());
  double worst = 0;
  for (size_t i = 0; i < chains.size(); ++i) {
    const auto single = encoder->embed(chains[i]);
    REQUIRE(batched[i].sizes() == single.sizes());
    worst = std::max(worst, test::scaled_max_diff(batched[i], single));
  }
  std::cout << "gearnet 6x128 embed_batch of " << chains.size() << " chains vs embed(): scaled max diff " << worst << "\n";
  CHECK(worst < 1e-5);
}

TEST_CASE("prepare --pgnn --part K/N + merge equals one process; --device cuda agrees with the CPU", "[gearnet][prepare][cli][parts]") {
  const auto dir = test::temp_dir("pgnn-parts");
  const std::string base = test::sapling_exe() + " prepare " + test::quote(test::source_dir() / "datasets/sample/psicov") +
                           " --pgnn gearnet --pgnn-weights " + test::quote(kBundledWeights) +
                           " --tokenizer foldseek_3di --shard-size 4 --embed-batch-residues 600 --quiet";
  auto r = test::run_command(base + " --out " + test::quote(dir / "single"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (int k = 0; k < 2; ++k) {
    r = test::run_command(base + " --out " + test::quote(dir / "parts") + " --part " + std::to_string(k) + "/2");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  r = test::run_command(test::sapling_exe() + " prepare --merge --out " + test::quote(dir / "parts"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const StructureDataset single(dir / "single"), merged(dir / "parts");
  REQUIRE(merged.size() == single.size());
  for (size_t i = 0; i < single.size(); ++i) {
    INFO(single.metadata(i).entry);
    CHECK(merged.metadata(i).entry == single.metadata(i).entry);
    CHECK(torch::equal(merged.tokens(i), single.tokens(i)));
    // Batched with other chains in another part: equal up to float16 rounding of float summation order.
    CHECK(torch::allclose(merged.embeddings(i).to(torch::kFloat32), single.embeddings(i).to(torch::kFloat32), 2e-3, 1e-4));
  }

  const auto cuda = test::run_command(base + " --out " + test::quote(dir / "cuda") + " --device cuda");
  INFO(cuda.output);
  if (!torch::cuda::is_available()) {
    CHECK(cuda.exit_code == 1);
    CHECK(cuda.output.find("CUDA is not available") != std::string::npos);
    WARN("no CUDA device: prepare --device cuda checked only for its refusal");
  } else {
    REQUIRE(cuda.exit_code == 0);
    const StructureDataset on_gpu(dir / "cuda");
    REQUIRE(on_gpu.size() == single.size());
    double worst = 0;
    for (size_t i = 0; i < single.size(); ++i)
      worst = std::max(worst, test::scaled_max_diff(on_gpu.embeddings(i).to(torch::kFloat32),
                                                    single.embeddings(i).to(torch::kFloat32)));
    std::cout << "prepare --device cuda vs cpu, " << single.size() << " chains: scaled max diff " << worst << "\n";
    CHECK(worst < 4e-3);  // float16 storage (2^-11) of float32 results computed in another order
  }
  std::filesystem::remove_all(dir);
}
