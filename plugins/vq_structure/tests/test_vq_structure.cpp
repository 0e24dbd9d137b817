// vq_structure: codebook arithmetic, invariant features, deterministic tokens, training, and the CLI around them.
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "codebook.hpp"
#include "features.hpp"
#include "metrics_support.hpp"
#include "sapling/dataset.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

// Last: LibTorch's glog defines its own CHECK, which Catch's must replace.
#include <catch2/catch.hpp>

using namespace sapling;
namespace fs = std::filesystem;

namespace {

using sapling::test::quote;

fs::path bm5_sample() { return test::source_dir() / "datasets/sample/bm5"; }

// Chains of a few bundled BM5 structures (repository files).
std::vector<ChainStructure> sample_chains(size_t files) {
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(bm5_sample())) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<ChainStructure> chains;
  for (size_t i = 0; i < files && i < paths.size(); ++i)
    for (auto& chain : read_structure(paths[i])) chains.push_back(std::move(chain));
  return chains;
}

std::shared_ptr<StructureTokenizer> make_tokenizer(const std::vector<std::pair<std::string, OptionValue>>& settings) {
  test::load_build_plugins();
  const auto& entry = StructureTokenizerRegistry::instance().find("vq_structure");
  Options options = Options::defaults(entry.schema);
  for (const auto& [key, value] : settings) options.set(key, value);
  return entry.factory(options);
}

// `steps` Adam steps over `chains` in batches of 4; returns the validation metrics after them.
std::map<std::string, double> train(StructureTokenizer& tokenizer, const std::vector<ChainStructure>& chains, int steps) {
  TrainableTokenizer* t = tokenizer.trainable();
  REQUIRE(t != nullptr);
  at::Generator generator = at::detail::createCPUGenerator(7);
  torch::optim::Adam optimizer(t->parameters(), torch::optim::AdamOptions(1e-3));
  t->set_training(true);
  for (int step = 0; step < steps; ++step) {
    std::vector<ChainStructure> batch;
    for (size_t k = 0; k < 4; ++k) batch.push_back(chains[(step * 4 + k) % chains.size()]);
    std::map<std::string, double> stats;
    optimizer.zero_grad();
    t->loss(batch, generator, stats).backward();
    optimizer.step();
  }
  t->set_training(false);
  return t->evaluate(chains);
}

}  // namespace

TEST_CASE("vq codebook: nearest codes and one EMA step match a hand-checked case", "[vq_structure]") {
  vq::EmaCodebook codebook(3, 2, /*decay=*/0.5);
  codebook->embedding.copy_(torch::tensor({0.f, 0.f, 1.f, 0.f, 0.f, 1.f}).view({3, 2}));
  codebook->embed_sum.copy_(codebook->embedding);
  const torch::Tensor z = torch::tensor({0.1f, 0.f, 0.9f, 0.1f, 1.1f, -0.1f, 0.f, 0.8f}).view({4, 2});
  const torch::Tensor codes = codebook->nearest(z);
  CHECK(codes.equal(torch::tensor({0, 1, 1, 2}, torch::kInt64)));
  // (0.5, 0.5) is equally far from all three codes: ties go to the lowest index.
  CHECK(codebook->nearest(torch::tensor({0.5f, 0.5f}).view({1, 2})).item<int64_t>() == 0);
  codebook->ema_update(z, codes);
  // counts [1, 2, 1]: cluster sizes 0.5 * 1 + 0.5 * count = [1, 1.5, 1]; sums 0.5 * code + 0.5 * sum of its
  // latents: [0.05, 0], [0.5 + 1.0, 0], [0, 0.5 + 0.4]; codes = sums / Laplace-smoothed sizes.
  CHECK(torch::allclose(codebook->cluster_size, torch::tensor({1.f, 1.5f, 1.f})));
  const double e = codebook->epsilon, n = 3.5;
  const auto smooth = [&](double size) { return (size + e) / (n + 3 * e) * n; };
  const torch::Tensor expected =
      torch::tensor({0.05 / smooth(1), 0.0, 1.5 / smooth(1.5), 0.0, 0.0, 0.9 / smooth(1)}, torch::kFloat32).view({3, 2});
  const double diff = (codebook->embedding - expected).abs().max().item<double>();
  std::cout << "EMA step: max |code - hand value| = " << diff << " (tolerance 1e-6)" << std::endl;
  CHECK(diff < 1e-6);
  CHECK(codebook->unused.equal(torch::zeros({3}, torch::kInt64)));
}

TEST_CASE("vq codebook: codes unused for restart_after batches are re-seeded from the batch", "[vq_structure]") {
  vq::EmaCodebook codebook(4, 2, 0.9);
  codebook->embedding.copy_(torch::tensor({0.f, 0.f, 5.f, 5.f, -5.f, 5.f, 5.f, -5.f}).view({4, 2}));
  codebook->embed_sum.copy_(codebook->embedding);
  at::Generator generator = at::detail::createCPUGenerator(1);
  const torch::Tensor z = torch::tensor({0.1f, 0.2f, -0.1f, 0.f, 0.f, 0.1f}).view({3, 2});
  for (int batch = 0; batch < 2; ++batch) {
    codebook->ema_update(z, codebook->nearest(z));
    CHECK(codebook->restart_dead(z, /*after=*/3, generator) == 0);  // unused 1, then 2 batches: not yet
  }
  codebook->ema_update(z, codebook->nearest(z));
  const torch::Tensor kept = codebook->embedding[0].clone();  // the used code: not restarted
  CHECK(codebook->restart_dead(z, 3, generator) == 3);
  CHECK(codebook->embedding[0].equal(kept));
  for (int64_t code = 1; code < 4; ++code) {
    // Each restarted code is one of the batch's latents, with a fresh count.
    const double distance = (z - codebook->embedding[code]).abs().sum(1).min().item<double>();
    CHECK(distance == 0.0);
    CHECK(codebook->unused[code].item<int64_t>() == 0);
    CHECK(codebook->cluster_size[code].item<float>() == 1.0f);
  }
  // Three latents, three dead codes: drawn without replacement, so all distinct.
  CHECK(std::get<0>(torch::unique_dim(codebook->embedding.slice(0, 1, 4), 0)).size(0) == 3);
}

TEST_CASE("vq features are invariant to a rotation and translation of the chain", "[vq_structure]") {
  const auto chains = sample_chains(1);
  REQUIRE_FALSE(chains.empty());
  ChainStructure moved = chains[0];
  torch::manual_seed(11);
  auto [q, r] = torch::linalg_qr(torch::randn({3, 3}, torch::kFloat64));
  if (torch::det(q).item<double>() < 0) q = -q;  // a proper rotation
  const torch::Tensor shift = torch::tensor({31.0, -12.5, 7.25}, torch::kFloat64);
  moved.coords = (torch::matmul(chains[0].coords.to(torch::kFloat64), q.t()) + shift).to(torch::kFloat32);
  const auto a = vq::residue_features(chains[0], 3), b = vq::residue_features(moved, 3);
  REQUIRE(a.values.size(1) == vq::num_features(3));
  REQUIRE(a.valid.equal(b.valid));
  const double diff = (a.values - b.values).abs().max().item<double>();
  std::cout << "features of " << chains[0].entry << " (" << chains[0].length() << " residues) after a rigid motion: max diff "
            << diff << " (tolerance 1e-3; float32 coordinates)" << std::endl;
  CHECK(diff < 1e-3);
  CHECK(a.values.abs().max().item<double>() < 10);  // built on a unit scale
}

TEST_CASE("vq encode is deterministic, masks residues without a CA and survives save and load", "[vq_structure]") {
  auto chains = sample_chains(2);
  auto tokenizer = make_tokenizer({{"codebook_size", int64_t{64}}});
  train(*tokenizer, chains, 4);
  ChainStructure chain = chains[0];
  chain.coords = chain.coords.clone();
  chain.coords[5].fill_(std::numeric_limits<float>::quiet_NaN());
  const auto first = tokenizer->encode(chain), second = tokenizer->encode(chain);
  REQUIRE(first.size() == static_cast<size_t>(chain.length()));
  CHECK(first == second);
  CHECK(first[5] == tokenizer->mask_state());
  CHECK(tokenizer->mask_state() == 64);
  CHECK(tokenizer->symbol(63) == "63");
  CHECK(tokenizer->symbol(64) == "-");
  for (size_t i = 0; i < first.size(); ++i)
    if (i != 5) CHECK((first[i] >= 0 && first[i] < 64));

  const auto dir = test::temp_dir("vq-roundtrip");
  tokenizer->trainable()->save_weights(dir / "vq.safetensors");
  const auto loaded = make_tokenizer({{"weights", (dir / "vq.safetensors").string()}});
  CHECK(loaded->num_states() == 64);  // the architecture comes from the file
  CHECK(loaded->encode(chain) == first);
}

TEST_CASE("vq training lowers the reconstruction error on bundled structures", "[vq_structure]") {
  const auto chains = sample_chains(6);
  auto tokenizer = make_tokenizer({{"codebook_size", int64_t{64}}});
  const auto start = train(*tokenizer, chains, 1);
  const auto end = train(*tokenizer, chains, 60);
  std::cout << "reconstruction after 1 step " << start.at("reconstruction") << ", after 61 steps " << end.at("reconstruction")
            << "; usage " << end.at("usage") << ", perplexity " << end.at("perplexity") << std::endl;
  CHECK(end.at("reconstruction") < 0.8 * start.at("reconstruction"));
  CHECK(end.at("usage") > 0.3);
}

TEST_CASE("a 4096-code vq tokenizer trains and tokenizes like a 20-code one", "[vq_structure]") {
  const auto chains = sample_chains(4);
  for (const int64_t size : {int64_t{20}, int64_t{4096}}) {
    DYNAMIC_SECTION(size << " codes") {
      auto tokenizer = make_tokenizer({{"codebook_size", size}});
      const auto quality = train(*tokenizer, chains, 8);
      std::cout << size << " codes: reconstruction " << quality.at("reconstruction") << ", usage " << quality.at("usage")
                << ", perplexity " << quality.at("perplexity") << std::endl;
      CHECK(tokenizer->num_states() == size);
      CHECK(tokenizer->symbol(size - 1) == std::to_string(size - 1));
      CHECK(quality.at("perplexity") > 2);
      const auto states = tokenizer->encode(chains[0]);
      CHECK(std::set<int64_t>(states.begin(), states.end()).size() > 2);
      for (const int64_t s : states) CHECK((s >= 0 && s <= size));
    }
  }
}

TEST_CASE("vq tokenizer refuses to encode without weights, and weights of another codebook size", "[vq_structure]") {
  const auto chains = sample_chains(1);
  auto untrained = make_tokenizer({});
  CHECK_THROWS_WITH(untrained->encode(chains[0]), Catch::Contains("no weights") && Catch::Contains("weights=FILE"));
  CHECK(make_tokenizer({{"allow_untrained", true}})->encode(chains[0]).size() == static_cast<size_t>(chains[0].length()));

  const auto dir = test::temp_dir("vq-mismatch");
  auto small = make_tokenizer({{"codebook_size", int64_t{20}}});
  train(*small, chains, 1);
  small->trainable()->save_weights(dir / "vq20.safetensors");
  CHECK_THROWS_WITH(make_tokenizer({{"weights", (dir / "vq20.safetensors").string()}, {"codebook_size", int64_t{512}}}),
                    Catch::Contains("vq20.safetensors: metadata key 'codebook_size' is 20 but option codebook_size = 512"));
  // Not a vq_structure file.
  const auto other = test::source_dir() / "datasets/models/gearnet_edge_mc_6x128.safetensors";
  CHECK_THROWS_WITH(make_tokenizer({{"weights", other.string()}}), Catch::Contains("metadata key 'format'"));
}

TEST_CASE("sapling train-tokenizer trains, and prepare and tokens use its weights", "[vq_structure][cli]") {
  const auto dir = test::temp_dir("vq-cli");
  std::string inputs;
  for (const char* name : {"1AY7_l_u", "1AY7_r_u", "1EFN_l_u", "1EFN_r_u", "1FFW_l_u", "1FFW_r_u", "1GCQ_l_u", "1GCQ_r_u"})
    inputs += " " + quote(bm5_sample() / (std::string(name) + ".pdb.gz"));
  auto r = test::run_command(test::sapling_exe() + " prepare" + inputs + " --out " + quote(dir / "plain") +
                             " --valid-fraction 0.3 --seed 1 --quiet --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  {
    std::ofstream recipe(dir / "vq.toml");
    recipe << "# A small tokenizer recipe for the test.\n[tokenizer]\ncomponent = \"vq_structure\"\ncodebook_size = 64\n"
              "[data]\ndataset = \"plain\"\n[train]\nepochs = 2\nbatch_chains = 4\n"
              "[output]\nweights = \"out/vq64.safetensors\"\nmetrics = \"out/vq64.jsonl\"\ntensorboard = \"out/tb\"\n";
  }
  r = test::run_command(test::sapling_exe() + " train-tokenizer " + quote(dir / "vq.toml") + " --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  {  // TensorBoard scalars per epoch: train/* and valid/* (the `train_`/`valid_` keys of the JSON record)
    std::string events;
    for (const auto& e : fs::directory_iterator(dir / "out/tb")) events += sapling::read_file(e.path());
    CHECK(events.find("train/loss") != std::string::npos);
    CHECK(events.find("valid/reconstruction") != std::string::npos);
  }
  CHECK_THAT(r.output, Catch::Contains("epoch 2/2") && Catch::Contains("reconstruction") &&
                           Catch::Contains("valid usage") && Catch::Contains("valid perplexity") &&
                           Catch::Contains("restarted"));
  const fs::path weights = dir / "out/vq64.safetensors";
  REQUIRE(fs::exists(weights));
  std::ifstream metrics(dir / "out/vq64.jsonl");
  std::string line;
  int records = 0;
  while (std::getline(metrics, line)) records += line.find("\"valid_reconstruction\"") != std::string::npos;
  CHECK(records == 2);

  r = test::run_command(test::sapling_exe() + " recipe check " + quote(dir / "vq.toml") + " " +
                        quote(test::source_dir() / "recipes/tokenizers"));
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("4 of 4 recipes valid"));

  r = test::run_command(test::sapling_exe() + " prepare" + inputs + " --out " + quote(dir / "tokens") +
                        " --tokenizer vq_structure --set tokenizer.weights=" + quote(weights) + " --quiet --threads 2");
  REQUIRE(r.exit_code == 0);
  const StructureDataset dataset(dir / "tokens");
  REQUIRE(dataset.has_tokens());
  CHECK(dataset.token_symbols().size() == 64);
  CHECK(dataset.token_mask_state() == 64);
  const auto tokens = dataset.tokens(0);
  CHECK(tokens.max().item<int64_t>() <= 64);

  r = test::run_command(test::sapling_exe() + " tokens" + inputs + " --out " + quote(dir / "tok/sample") +
                        " --tokenizer vq_structure --set tokenizer.weights=" + quote(weights) + " --threads 2");
  REQUIRE(r.exit_code == 0);
  std::ifstream fasta(dir / "tok/sample.vq.fasta");
  std::getline(fasta, line);
  CHECK(line.rfind(">1AY7_l_u", 0) == 0);
  std::getline(fasta, line);
  CHECK(line.find(' ') != std::string::npos);  // code numbers are space-separated
}

TEST_CASE("sapling train-tokenizer and the vq options fail with one clear error", "[vq_structure][cli]") {
  const auto dir = test::temp_dir("vq-bad");
  {
    std::ofstream recipe(dir / "fixed.toml");
    recipe << "# Not trainable.\n[tokenizer]\ncomponent = \"foldseek_3di\"\n[data]\ndataset = \"nowhere\"\n"
              "[output]\nweights = \"w.safetensors\"\n";
  }
  auto r = test::run_command(test::sapling_exe() + " train-tokenizer " + quote(dir / "fixed.toml"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("fixed.toml:3: [tokenizer] component 'foldseek_3di' is a fixed tokenizer"));
  {
    std::ofstream recipe(dir / "typo.toml");
    recipe << "# A typo.\n[tokenizer]\ncomponent = \"vq_structure\"\ncodebok_size = 20\n[data]\ndataset = \"nowhere\"\n"
              "[output]\nweights = \"w.safetensors\"\n";
  }
  r = test::run_command(test::sapling_exe() + " train-tokenizer " + quote(dir / "typo.toml"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("typo.toml:4") && Catch::Contains("codebok_size") &&
                           Catch::Contains("did you mean 'codebook_size'"));
  r = test::run_command(test::sapling_exe() + " tokens " + quote(bm5_sample() / "1AY7_l_u.pdb.gz") + " --out " +
                        quote(dir / "t") + " --tokenizer vq_structure --set tokenizer.weights=" + quote(dir / "missing.safetensors"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("missing.safetensors"));
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
}

// Issue #15's "done when": a VQ tokenizer trained by sapling on the bundled structures drives the full
// method (MLM + structure tokens + contrastive, excess-loss selection against a reference trained with the same
// tokens) end to end, on the sample dataset that stores 3Di tokens, which the trainer must not use.
TEST_CASE("a vq tokenizer trained here drives a full-method training run end to end", "[vq_structure][cli][train]") {
  const auto dir = test::temp_dir("vq-full-method");
  const auto dataset = test::sample_dataset();  // 3Di tokens + GearNet embeddings, reference splits
  {
    std::ofstream recipe(dir / "vq.toml");
    recipe << "# The test's tokenizer: 64 codes, 2 epochs on the sample's train split.\n[tokenizer]\n"
              "component = \"vq_structure\"\ncodebook_size = 64\n[data]\ndataset = "
           << quote(dataset) << "\nsplit = \"train\"\n[train]\nepochs = 2\nbatch_chains = 8\n"
           << "[output]\nweights = \"vq64.safetensors\"\nmetrics = \"vq64.jsonl\"\n";
  }
  auto r = test::run_command(test::sapling_exe() + " train-tokenizer " + quote(dir / "vq.toml") + " --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string tokens = " --set structure_tokens.component=vq_structure --set structure_tokens.weights=" +
                             quote(dir / "vq64.safetensors");
  const auto model = test::fixtures_dir() / "esm2_tiny";
  r = test::run_command(test::small_train_command("reference_esm2_8m.toml", model, dir / "reference",
                                                  "--max-steps 2" + tokens));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("does not reproduce the tokens stored"));
  r = test::run_command(test::small_train_command(
      "saesm2_8m.toml", model, dir / "aligned",
      "--max-steps 2 --set reference_model.path=" + quote(dir / "reference" / "best") + tokens));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto train = test::read_metrics(dir / "aligned" / "metrics.jsonl", "train");
  REQUIRE_FALSE(train.empty());
  INFO(train.back().dump());
  CHECK(train.back().contains("structure_token"));
  CHECK(train.back().contains("kept.structure_token"));
  // The head was sized from the tokenizer: 64 codes + 6 specials (3Di would give 26).
  const SafetensorsFile heads(dir / "aligned" / "best" / "heads.safetensors");
  const auto classes = heads.get("structure_token.output_layer.weight").size(0);
  std::cout << "full method with vq64 tokens: structure-token head with " << classes << " classes\n";
  CHECK(classes == 70);
}

// Issue #30: train-tokenizer resumes like train. Three epochs in two pieces (the time limit stops the first after
// epoch 1 with a checkpoint; --resume runs epochs 2-3) give the weights and the per-epoch records of an
// uninterrupted run: the checkpoint holds the weights, the Adam state, the random stream and the epoch position.
TEST_CASE("sapling train-tokenizer stopped after an epoch and resumed equals an uninterrupted run", "[vq_structure][cli][resume]") {
  const auto dir = test::temp_dir("vq-resume");
  std::string inputs;
  for (const char* name : {"1AY7_l_u", "1AY7_r_u", "1EFN_l_u", "1EFN_r_u", "1FFW_l_u", "1FFW_r_u", "1GCQ_l_u", "1GCQ_r_u"})
    inputs += " " + quote(bm5_sample() / (std::string(name) + ".pdb.gz"));
  auto r = test::run_command(test::sapling_exe() + " prepare" + inputs + " --out " + quote(dir / "plain") +
                             " --valid-fraction 0.3 --seed 1 --quiet --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* run : {"whole", "pieces"}) {
    std::ofstream recipe(dir / (std::string(run) + ".toml"));
    recipe << "# The resume test's tokenizer: 3 epochs of 2 batches.\nkind = \"train-tokenizer\"\n[tokenizer]\n"
              "component = \"vq_structure\"\ncodebook_size = 32\nrestart_after = 1\n[data]\ndataset = \"plain\"\n"
              "[train]\nepochs = 3\nbatch_chains = 3\nseed = 4\n[output]\nweights = \""
           << run << "/vq.safetensors\"\nmetrics = \"" << run << "/vq.jsonl\"\n";
  }
  const std::string train = test::sapling_exe() + " train-tokenizer ";
  r = test::run_command(train + quote(dir / "whole.toml") + " --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(fs::exists(dir / "whole/vq.checkpoint"));  // a finished run leaves no checkpoint

  r = test::run_command(train + quote(dir / "pieces.toml") + " --threads 2 --time-limit 1e-9");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("epoch 1/3") && Catch::Contains("time limit") && !Catch::Contains("epoch 2/3"));
  REQUIRE(fs::exists(dir / "pieces/vq.checkpoint/progress.json"));
  // Without --resume the checkpoint is not silently overwritten.
  r = test::run_command(train + quote(dir / "pieces.toml") + " --threads 2");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("vq.checkpoint") && Catch::Contains("--resume"));
  r = test::run_command(train + quote(dir / "pieces.toml") + " --threads 2 --resume");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("resuming from") && Catch::Contains("epoch 3/3") && !Catch::Contains("epoch 1/3"));
  CHECK_FALSE(fs::exists(dir / "pieces/vq.checkpoint"));

  const SafetensorsFile whole(dir / "whole/vq.safetensors"), pieces(dir / "pieces/vq.safetensors");
  REQUIRE(whole.keys() == pieces.keys());
  double max_difference = 0;
  for (const auto& key : whole.keys()) {
    const auto a = whole.get(key).to(torch::kFloat64), b = pieces.get(key).to(torch::kFloat64);
    REQUIRE(a.sizes() == b.sizes());
    if (a.numel() > 0) max_difference = std::max(max_difference, (a - b).abs().max().item<double>());
  }
  // Every record but the wall time: the same numbers, epoch by epoch (one record per epoch, none twice).
  auto records = [](const fs::path& file) {
    std::vector<nlohmann::json> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  };
  const auto a = records(dir / "whole/vq.jsonl"), b = records(dir / "pieces/vq.jsonl");
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  for (size_t e = 0; e < a.size(); ++e)
    for (const auto& [key, value] : a[e].items()) {
      if (key == "seconds") continue;
      REQUIRE(b[e].contains(key));
      max_difference = std::max(max_difference, std::abs(value.get<double>() - b[e][key].get<double>()));
    }
  std::cout << "train-tokenizer resumed after epoch 1 of 3 vs uninterrupted: max |difference| over " << whole.keys().size()
            << " tensors and " << a.size() << " metric records = " << max_difference << " (tolerance 1e-6)\n";
  CHECK(max_difference <= 1e-6);
}
