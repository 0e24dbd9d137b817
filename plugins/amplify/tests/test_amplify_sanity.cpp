// AMPLIFY sanity on the briefly pretrained small model: masked-token accuracy on held-out UniProt sequences.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <random>

#include "amplify_test_helpers.hpp"
#include "sapling/fasta.hpp"
#include "sapling/files.hpp"

TEST_CASE("amplify_small_uniprot predicts masked residues of held-out sequences", "[amplify][sanity]") {
  SAPLING_REQUIRE_DATA("amplify_small_uniprot");
  SAPLING_REQUIRE_DATA("uniprot_go160k");
  // The model loads from a sharded checkpoint (index + two shards).
  REQUIRE(std::filesystem::exists(amplify_test::small_model_dir() / "model.safetensors.index.json"));
  auto model = amplify_test::load(amplify_test::small_model_dir());
  CHECK(model->hidden_size() == 320);
  CHECK(model->num_layers() == 6);
  const auto& tokenizer = model->tokenizer();

  // The first 2000 records were held out of pretraining; take the first 40, cropped to 256 residues.
  // Only the head of the file is parsed (the full file has a malformed record further down).
  constexpr size_t kSequences = 40, kCrop = 256;
  const auto fasta = sapling::test::data_path("uniprot_go160k") / "uniprot_go160k.fasta.gz";
  const auto text = sapling::read_maybe_gzipped(fasta);
  size_t end = 0, headers = 0;
  while (end < text.size()) {
    if (text[end] == '>' && (end == 0 || text[end - 1] == '\n') && ++headers > kSequences) break;
    const auto newline = text.find('\n', end);
    end = newline == std::string::npos ? text.size() : newline + 1;
  }
  const auto records = sapling::parse_fasta(text.substr(0, end), fasta.string());
  REQUIRE(records.size() == kSequences);
  std::mt19937 rng(20240607);
  // Second input set, corrupted as in pretraining (80% <mask>, 10% random residue, 10% kept), so the
  // perplexity can be set beside the training log's held-out 14.3.
  std::mt19937 corrupt_rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto standard = tokenizer.standard_residue_ids();
  std::uniform_int_distribution<size_t> pick(0, standard.size() - 1);
  std::vector<std::vector<int64_t>> inputs, targets, pretraining_inputs;
  std::map<int64_t, int64_t> target_counts;
  for (size_t r = 0; r < kSequences; ++r) {
    const auto& residues = records[r].sequence;
    auto ids = tokenizer.encode(residues.substr(0, std::min(kCrop, residues.size())));
    std::vector<int64_t> labels(ids.size(), -100);
    // Mask 15% of the residue positions (not bos/eos), at least one.
    std::vector<size_t> positions;
    for (size_t i = 1; i + 1 < ids.size(); ++i) positions.push_back(i);
    std::shuffle(positions.begin(), positions.end(), rng);
    const size_t count = std::max<size_t>(1, static_cast<size_t>(std::lround(0.15 * positions.size())));
    auto corrupted = ids;
    for (size_t j = 0; j < count; ++j) {
      const auto p = positions[j];
      labels[p] = ids[p];
      ++target_counts[ids[p]];
      ids[p] = tokenizer.mask_id();
      const double u = unit(corrupt_rng);
      corrupted[p] = u < 0.8 ? tokenizer.mask_id() : u < 0.9 ? standard[pick(corrupt_rng)] : corrupted[p];
    }
    inputs.push_back(ids);
    pretraining_inputs.push_back(corrupted);
    targets.push_back(labels);
  }
  const auto batch = tokenizer.pad(inputs);
  auto labels = torch::full(batch.ids.sizes(), -100, torch::kInt64);
  for (size_t b = 0; b < targets.size(); ++b)
    for (size_t t = 0; t < targets[b].size(); ++t) labels[b][t] = targets[b][t];

  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  const auto out = model->forward(batch.ids, batch.mask, {});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto scored = labels.ne(-100);
  const auto logits = out.logits.index({scored});
  const auto truth = labels.index({scored});
  const auto n = truth.numel();
  const double accuracy = logits.argmax(-1).eq(truth).sum().item<double>() / static_cast<double>(n);
  const double cross_entropy = torch::nn::functional::cross_entropy(logits, truth).item<double>();
  const auto pretraining_batch = tokenizer.pad(pretraining_inputs);
  const auto pretraining_logits = model->forward(pretraining_batch.ids, pretraining_batch.mask, {}).logits.index({scored});
  const double pretraining_perplexity =
      std::exp(torch::nn::functional::cross_entropy(pretraining_logits, truth).item<double>());
  int64_t most_common = 0;
  for (const auto& kv : target_counts) most_common = std::max(most_common, kv.second);
  const double majority = static_cast<double>(most_common) / static_cast<double>(n);
  std::cout << "amplify_small_uniprot held-out masked accuracy " << accuracy << " over " << n
            << " masked residues (40 sequences, crop 256); perplexity " << std::exp(cross_entropy)
            << "; majority-class baseline " << majority << ", uniform 0.05; forward " << seconds << " s; perplexity with 80/10/10 corruption "
            << pretraining_perplexity << " (training log: held-out 14.3)\n";
  CHECK(accuracy > 0.1);
  CHECK(accuracy > majority);
  CHECK(std::exp(cross_entropy) < 20.0);  // 20 = uniform over the amino acids
  CHECK(pretraining_perplexity < 20.0);
}
