// Conformance of every registered alignment loss: per-residue sizes match their index, real residues only, gradients, determinism.
#include <catch2/catch.hpp>

#include "conformance_support.hpp"
#include "sapling/interfaces.hpp"

namespace {

using sapling::AlignmentLoss;
using sapling::LossInputs;
namespace t = sapling::test;

constexpr int64_t kBatch = 2, kTokens = 12, kHidden = 16, kPgnn = 8, kVocab = 33, kStates = 20;

// What `sapling train` gives every loss factory: the model's width, the data's pGNN width and vocabulary.
sapling::LossContext context() {
  sapling::LossContext c;
  c.model_width = kHidden;
  c.structure_encoder_width = kPgnn;
  c.structure_vocabulary = sapling::StructureVocabulary::esm_like(kStates);
  return c;
}

std::shared_ptr<AlignmentLoss> build_loss(const std::string& name, uint64_t seed) {
  torch::manual_seed(seed);
  const auto& entry = sapling::AlignmentLossRegistry::instance().find(name);
  INFO("alignment_loss '" << name << "'");
  std::shared_ptr<AlignmentLoss> loss;
  REQUIRE_NOTHROW(loss = entry.factory(sapling::Options::defaults(entry.schema), context()));
  loss->eval();
  return loss;
}

// A micro-batch of two proteins (10 and 6 residues between BOS and EOS), every input a loss may read.
struct Batch {
  sapling::EncoderOutput plm;
  LossInputs inputs;
};

Batch make_batch(int64_t residues0 = 10, int64_t residues1 = 6) {
  torch::manual_seed(7);
  Batch b;
  auto residue_mask = torch::zeros({kBatch, kTokens}, torch::kBool);
  residue_mask[0].slice(0, 1, 1 + residues0).fill_(true);
  residue_mask[1].slice(0, 1, 1 + residues1).fill_(true);
  b.plm.last_hidden = torch::randn({kBatch, kTokens, kHidden}).requires_grad_(true);
  b.plm.logits = torch::randn({kBatch, kTokens, kVocab}).requires_grad_(true);
  b.inputs.plm = &b.plm;
  b.inputs.residue_mask = residue_mask;
  b.inputs.ids = torch::randint(4, 24, {kBatch, kTokens}, torch::kInt64);
  // Every third real residue masked for MLM.
  auto labels = torch::full({kBatch, kTokens}, -100, torch::kInt64);
  auto chosen = residue_mask & (torch::arange(kTokens).remainder(3) == 1).unsqueeze(0);
  labels = torch::where(chosen, torch::randint(4, 24, {kBatch, kTokens}, torch::kInt64), labels);
  b.inputs.mlm_labels = labels;
  auto tokens = torch::randint(0, kStates, {kBatch, kTokens}, torch::kInt64) + context().structure_vocabulary.state_id(0);
  tokens = torch::where(residue_mask, tokens, torch::full_like(tokens, -100));
  tokens[0][2] = -100;  // one residue without a structure token
  b.inputs.structure_tokens = tokens;
  b.inputs.pgnn_embeddings = torch::randn({kBatch, kTokens, kPgnn}) * residue_mask.unsqueeze(-1);
  return b;
}

}  // namespace

TEST_CASE("conformance: every loss scores real residues with one value per index entry", "[conformance]") {
  t::load_build_plugins();
  const auto names = sapling::AlignmentLossRegistry::instance().names();
  REQUIRE_FALSE(names.empty());
  for (const auto& name : names) {
    INFO("alignment_loss '" << name << "'");
    const auto loss = build_loss(name, 0);
    Batch b = make_batch();
    const auto terms = loss->compute(b.inputs);
    REQUIRE_FALSE(terms.per_residue.empty());
    REQUIRE(terms.index.defined());
    const auto index = terms.index.to(torch::kInt64);
    CHECK(index.dim() == 1);
    CHECK(index.min().item<int64_t>() >= 0);
    CHECK(index.max().item<int64_t>() < kBatch * kTokens);
    CHECK(b.inputs.residue_mask.flatten().index_select(0, index).all().item<bool>());  // never a special or pad
    if (loss->scores_masked_residues())
      CHECK((b.inputs.mlm_labels.flatten().index_select(0, index) != -100).all().item<bool>());
    torch::Tensor total = torch::zeros({});
    for (const auto& [part, values] : terms.per_residue) {
      INFO("part " << part);
      CHECK(values.dim() == 1);
      CHECK(values.size(0) == index.size(0));
      CHECK(torch::isfinite(values).all().item<bool>());
      total = total + values.sum();
    }
    total.backward();
    for (const auto& grad : {b.plm.last_hidden.grad(), b.plm.logits.grad()})
      if (grad.defined()) CHECK(torch::isfinite(grad).all().item<bool>());
    for (const auto& [metric, value] : loss->metrics()) CHECK(std::isfinite(value));
  }
}

TEST_CASE("conformance: losses are deterministic and their parameters carry the whole state", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::AlignmentLossRegistry::instance().names()) {
    INFO("alignment_loss '" << name << "'");
    const auto first = build_loss(name, 1);
    const auto other = build_loss(name, 2);  // other initial weights
    Batch b = make_batch();
    const auto a = first->compute(b.inputs);
    const auto again = first->compute(b.inputs);
    for (const auto& [part, values] : a.per_residue) CHECK(torch::equal(values, again.per_residue.at(part)));
    // Copying the parameters (what heads.safetensors stores) reproduces the loss exactly.
    auto source = first->named_parameters();
    for (auto& p : other->named_parameters()) p.value().copy_(source[p.key()]);
    for (auto& p : other->named_buffers()) p.value().copy_(first->named_buffers()[p.key()]);
    const auto copied = other->compute(b.inputs);
    for (const auto& [part, values] : a.per_residue) {
      const double diff = (values - copied.per_residue.at(part)).abs().max().item<double>();
      CHECK(diff == 0.0);
    }
  }
}

TEST_CASE("conformance: a batch with no scorable residue gives empty terms or a clear error", "[conformance]") {
  t::load_build_plugins();
  for (const auto& name : sapling::AlignmentLossRegistry::instance().names()) {
    INFO("alignment_loss '" << name << "'");
    const auto loss = build_loss(name, 0);
    for (int64_t residues : {0, 1}) {
      Batch b = make_batch(residues, residues);
      std::string message;
      sapling::LossTerms terms;
      bool returned = false;
      CHECK(t::succeeds_or_reports(
          [&] {
            terms = loss->compute(b.inputs);
            returned = true;
          },
          &message));
      INFO(residues << " residue(s) per protein: " << (returned ? "returned" : "error: " + message));
      if (returned)
        for (const auto& [part, values] : terms.per_residue) {
          CHECK(values.size(0) == terms.index.size(0));
          CHECK(torch::isfinite(values).all().item<bool>());
        }
    }
  }
}
