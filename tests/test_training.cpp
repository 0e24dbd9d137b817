// Trainer building blocks: AdamW against LibTorch's, the schedule, epoch plans, collation, checkpoint folders.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <set>

#include "sapling/interfaces.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/internal/optimizer.hpp"
#include "sapling/packing.hpp"
#include "sapling/internal/training_batches.hpp"
#include "sapling/internal/training_checkpoint.hpp"
#include "test_support.hpp"

using namespace sapling;

TEST_CASE("AdamW matches torch::optim::AdamW step for step", "[training][optimizer]") {
  torch::manual_seed(3);
  const auto w0 = torch::randn({5, 4}), b0 = torch::randn({4});
  auto ours_w = w0.clone().requires_grad_(true), ours_b = b0.clone().requires_grad_(true);
  auto ref_w = w0.clone().requires_grad_(true), ref_b = b0.clone().requires_grad_(true);
  ParameterGroup decay{"decay", {{"w", ours_w}}, 1e-2, 0.1}, no_decay{"no_decay", {{"b", ours_b}}, 1e-2, 0.0};
  decay.lr = 1e-2;
  no_decay.lr = 1e-2;
  AdamW ours({decay, no_decay}, {0.9, 0.95, 1e-8});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{ref_w},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{ref_b},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
  torch::optim::AdamW reference(std::move(groups));
  const auto x = torch::randn({7, 5});
  double worst = 0;
  for (int step = 0; step < 20; ++step) {
    ours.zero_grad();
    reference.zero_grad();
    (x.mm(ours_w) + ours_b).tanh().pow(2).sum().backward();
    (x.mm(ref_w) + ref_b).tanh().pow(2).sum().backward();
    ours.step();
    reference.step();
    worst = std::max({worst, test::scaled_max_diff(ours_w, ref_w), test::scaled_max_diff(ours_b, ref_b)});
  }
  std::cout << "AdamW vs torch::optim::AdamW, 20 steps: max diff " << worst << "\n";
  CHECK(worst < 1e-6);

  SECTION("state round trip by name") {
    AdamW other({decay, no_decay}, {0.9, 0.95, 1e-8});
    other.load_state(ours.state(), "test");
    CHECK(other.steps() == 20);
    CHECK(torch::equal(other.state()[0].second, ours.state()[0].second));
    NamedTensors broken = ours.state();
    broken.erase(broken.begin());
    CHECK_THROWS_WITH(other.load_state(broken, "opt.safetensors"), Catch::Contains("opt.safetensors") && Catch::Contains("exp_avg.w"));
  }
}

TEST_CASE("gradient clipping uses the global norm", "[training][optimizer]") {
  auto a = torch::zeros({2}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  std::vector<ParameterGroup> groups{{"g", {{"a", a}, {"b", b}}, 1.0, 0.0}};
  CHECK(clip_grad_norm(groups, 0.0) == Approx(5.0));  // measured only
  CHECK(clip_grad_norm(groups, 1.0) == Approx(5.0));
  CHECK(a.grad()[0].item<double>() == Approx(0.6).epsilon(1e-5));
  CHECK(b.grad()[0].item<double>() == Approx(0.8).epsilon(1e-5));
}

TEST_CASE("learning-rate schedule: linear warm-up then cosine or linear decay", "[training][schedule]") {
  // warm-up 4 of 14 steps: (s + 1) / 4 for s < 4, then cos over the 10 remaining.
  CHECK(lr_factor(0, 4, 14, DecaySchedule::Cosine, 0.0) == Approx(0.25));
  CHECK(lr_factor(3, 4, 14, DecaySchedule::Cosine, 0.0) == Approx(1.0));
  CHECK(lr_factor(4, 4, 14, DecaySchedule::Cosine, 0.0) == Approx(1.0));
  CHECK(lr_factor(9, 4, 14, DecaySchedule::Cosine, 0.0) == Approx(0.5));   // halfway: (1 + cos(pi/2)) / 2
  CHECK(lr_factor(14, 4, 14, DecaySchedule::Cosine, 0.0) == Approx(0.0).margin(1e-12));
  CHECK(lr_factor(14, 4, 14, DecaySchedule::Cosine, 0.1) == Approx(0.1));
  CHECK(lr_factor(9, 4, 14, DecaySchedule::Linear, 0.0) == Approx(0.5));
  CHECK(lr_factor(12, 4, 14, DecaySchedule::Constant, 0.0) == Approx(1.0));
  CHECK(lr_factor(0, 0, 10, DecaySchedule::Cosine, 0.0) == Approx(1.0));
}

TEST_CASE("epoch plans: every protein once, seeded, within the token budget", "[training][batches]") {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 200; ++i) lengths.push_back(20 + (i * 37) % 400);
  BatchPlanSettings budget;
  budget.tokens_per_batch = 1024;
  budget.proteins_per_batch = 8;
  budget.sort_window = 4;
  const auto plan = plan_epoch(lengths, budget, 7, 0);
  std::multiset<size_t> seen;
  int64_t padded = 0, real = 0;
  for (const auto& batch : plan) {
    int64_t longest = 0;
    for (size_t i : batch) {
      seen.insert(i);
      longest = std::max(longest, lengths[i] + 2);
      real += lengths[i] + 2;
    }
    CHECK(static_cast<int64_t>(batch.size()) <= 8);
    CHECK((longest * static_cast<int64_t>(batch.size()) <= 1024 || batch.size() == 1));
    padded += longest * static_cast<int64_t>(batch.size());
  }
  CHECK(seen.size() == 200);
  CHECK(std::set<size_t>(seen.begin(), seen.end()).size() == 200);
  CHECK(plan == plan_epoch(lengths, budget, 7, 0));
  CHECK(plan != plan_epoch(lengths, budget, 7, 1));
  CHECK(plan != plan_epoch(lengths, budget, 8, 0));

  BatchPlanSettings fixed;
  fixed.mode = Batching::Proteins;
  fixed.proteins_per_batch = 8;
  const auto published = plan_epoch(lengths, fixed, 7, 0);
  CHECK(published.size() == 25);
  int64_t fixed_padded = 0;
  for (const auto& batch : published) {
    int64_t longest = 0;
    for (size_t i : batch) longest = std::max(longest, lengths[i] + 2);
    fixed_padded += longest * static_cast<int64_t>(batch.size());
  }
  const double budget_padding = 1.0 - static_cast<double>(real) / static_cast<double>(padded);
  const double fixed_padding = 1.0 - static_cast<double>(real) / static_cast<double>(fixed_padded);
  std::cout << "padding: token budget " << budget_padding << ", fixed 8 proteins " << fixed_padding << "\n";
  CHECK(budget_padding < fixed_padding / 2);
}

TEST_CASE("collate crops, masks residues only and aligns per-residue targets", "[training][batches]") {
  test::load_build_plugins();
  auto model = load_sequence_encoder(test::fixtures_dir() / "esm2_tiny");
  const auto& tokenizer = model->tokenizer();
  TrainingExample a, b;
  a.sequence = "MKTAYIAKQRQISFVKSHFSRQ";  // 22 residues: cropped to 10
  a.tokens = torch::arange(22, torch::kInt16).remainder(20);
  a.tokens[5] = 20;  // the mask state: unknown
  a.embeddings = torch::arange(22, torch::kFloat32).unsqueeze(1).repeat({1, 3}) + 1;
  b.sequence = "GSHM";
  b.tokens = torch::tensor({1, 2, 3, 4}, torch::kInt16);
  b.embeddings = torch::ones({4, 3});
  auto generator = make_generator(11);
  MaskingOptions masking;
  masking.probability = 0.5;
  const auto batch = collate({a, b}, tokenizer, 10, masking, {sapling::StructureVocabulary::esm_like(20), 20}, generator);
  REQUIRE(batch.ids.sizes() == torch::IntArrayRef({2, 12}));
  CHECK(batch.residues == 14);
  CHECK(batch.residue_mask.sum().item<int64_t>() == 14);
  // The embedding column holds 1 + the residue's index in the full chain: recover the crop start.
  const int64_t start = batch.pgnn_embeddings[0][1][0].item<int64_t>() - 1;
  CHECK(start >= 0);
  CHECK(start <= 12);
  for (int64_t k = 0; k < 10; ++k) {
    const int64_t residue = start + k;
    CHECK(batch.pgnn_embeddings[0][k + 1][2].item<int64_t>() == residue + 1);
    const int64_t expected = residue == 5 ? -100 : sapling::StructureVocabulary::esm_like(20).state_id(residue % 20);
    CHECK(batch.structure_tokens[0][k + 1].item<int64_t>() == expected);
    const bool masked = batch.ids[0][k + 1].item<int64_t>() == tokenizer.mask_id();
    CHECK(masked == (batch.mlm_labels[0][k + 1].item<int64_t>() != -100));
    if (!masked) CHECK(tokenizer.token(batch.ids[0][k + 1].item<int64_t>())[0] == a.sequence[static_cast<size_t>(residue)]);
  }
  // Specials and padding: no targets, no embeddings, never masked.
  for (int64_t t : {0, 11}) {
    CHECK(batch.structure_tokens[0][t].item<int64_t>() == -100);
    CHECK(batch.mlm_labels[0][t].item<int64_t>() == -100);
    CHECK(batch.pgnn_embeddings[0][t].abs().sum().item<double>() == 0.0);
  }
  CHECK(batch.structure_tokens[1].slice(0, 1, 5).equal(torch::tensor({5, 6, 7, 8}, torch::kInt64)));
  CHECK(batch.mask[1].sum().item<int64_t>() == 6);

  auto same = make_generator(11);
  const auto again = collate({a, b}, tokenizer, 10, masking, {sapling::StructureVocabulary::esm_like(20), 20}, same);
  CHECK(torch::equal(again.ids, batch.ids));

  // LossInputs::segments: row b is protein b, -1 at pad; packed, the same proteins at their packed positions.
  const auto segments = protein_segments(batch);
  CHECK(torch::equal(segments[0], torch::zeros({12}, torch::kInt64)));
  CHECK(torch::equal(segments[1], torch::tensor({1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1}, torch::kInt64)));
  const auto packed = pack_micro_batch(batch, 18, tokenizer.pad_id());
  const auto packed_segments = protein_segments(packed);
  CHECK(torch::equal(packed_segments, packed.segments));
  CHECK((packed_segments == 0).sum().item<int64_t>() == 12);
  CHECK((packed_segments == 1).sum().item<int64_t>() == 6);

  TrainingExample bad = b;
  bad.tokens = torch::tensor({1, 2, 30, 4}, torch::kInt16);
  CHECK_THROWS_WITH(collate({bad}, tokenizer, 10, masking, {sapling::StructureVocabulary::esm_like(20), 20}, generator), Catch::Contains("structure token"));
}

TEST_CASE("checkpoint store: atomic folders, latest pointer, pruning, damaged fallback", "[training][checkpoint]") {
  test::load_build_plugins();
  auto model = load_sequence_encoder(test::fixtures_dir() / "esm2_tiny");
  const auto run = test::temp_dir("ckpt");
  CheckpointStore store(run);
  CHECK_FALSE(store.latest().has_value());
  NamedTensors heads{{"structure_token.output_layer.bias", torch::arange(3, torch::kFloat32)}};
  NamedTensors optimizer{{"exp_avg.model.x", torch::ones({2})}, {"step", torch::tensor(int64_t{4})}};
  for (int64_t step : {2, 4, 6}) {
    TrainingProgress p;
    p.step = step;
    p.epoch = 1;
    p.batch_in_epoch = step * 2;
    p.metrics_bytes = 100 + static_cast<uint64_t>(step);
    p.recipe_digest = "abc";
    store.save(p, *model, heads, optimizer, 2);
  }
  REQUIRE(store.latest().has_value());
  CHECK(store.latest()->filename() == "step-00000006");
  CHECK_FALSE(std::filesystem::exists(run / "checkpoints" / "step-00000002"));
  CHECK(std::filesystem::exists(run / "checkpoints" / "step-00000004"));
  const auto progress = CheckpointStore::read_progress(*store.latest());
  CHECK(progress.step == 6);
  CHECK(progress.batch_in_epoch == 12);
  CHECK(progress.metrics_bytes == 106);
  CHECK(std::isinf(progress.best_valid));
  // The folder is a model folder too.
  auto reloaded = load_sequence_encoder(*store.latest());
  CHECK(reloaded->hidden_size() == model->hidden_size());
  // No temporary folders left behind.
  for (const auto& e : std::filesystem::directory_iterator(run / "checkpoints"))
    CHECK(e.path().filename().string().rfind(".", 0) != 0);

  // A damaged newest checkpoint (progress.json cut short) is skipped with a warning.
  std::ofstream(run / "checkpoints" / "step-00000006" / "progress.json") << "{\"step\": 6,";
  REQUIRE(store.latest().has_value());
  CHECK(store.latest()->filename() == "step-00000004");
  std::filesystem::remove(run / "checkpoints" / "latest");
  CHECK(store.latest()->filename() == "step-00000004");

  // save_model_folder replaces an existing folder whole.
  save_model_folder(run / "best", *model, heads);
  save_model_folder(run / "best", *model, heads);
  CHECK(std::filesystem::exists(run / "best" / "heads.safetensors"));
  CHECK(std::filesystem::exists(run / "best" / "config.json"));
  std::filesystem::remove_all(run);
}
