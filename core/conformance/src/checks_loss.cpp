// Alignment loss checks: per-residue sizes match their index, real residues only, gradients, determinism, the
// declared fields (filled from real structures), and a clear error for a field the batch lacks.
#include <cmath>

#include "checks.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/structure_vocabulary.hpp"

namespace sapling::conformance {

namespace loss_impl {  // named, not anonymous: the unity build compiles these files as one unit

// The examples' options and the LossContext `sapling train` gives a loss (model width, pGNN width, the data's
// structure-token vocabulary).
std::shared_ptr<AlignmentLoss> build_loss(const std::string& name, const RunContext& context, uint64_t seed) {
  torch::manual_seed(seed);
  std::shared_ptr<AlignmentLoss> loss;
  try {
    const auto& entry = AlignmentLossRegistry::instance().find(name);
    Options options = context.examples.options(AlignmentLoss::kind, name, entry.schema);
    LossContext loss_context;
    loss_context.model_width = kHidden;
    loss_context.structure_encoder_width = kPgnn;
    loss_context.structure_vocabulary = StructureVocabulary::esm_like(kStates);
    loss = entry.factory(options, loss_context);
    if (!loss) fail("its factory returned nothing");
  } catch (const std::exception& e) {
    fail("cannot build alignment_loss '", name, "' for the conformance checks: ", e.what(),
         "\n(give its options in [alignment_loss.", name, "] of the examples file)");
  }
  loss->eval();
  return loss;
}

LossBatch batch_for(const std::string& name, const RunContext& context, int64_t residues0 = 10, int64_t residues1 = 6) {
  return make_loss_batch(context.fixtures, name, AlignmentLossRegistry::instance().find(name).fields, residues0,
                         residues1);
}

// compute(), with the loss's name on any error (what the trainer adds as "[losses.NAME]").
LossTerms compute(AlignmentLoss& loss, const std::string& name, const LossInputs& inputs) {
  try {
    return loss.compute(inputs);
  } catch (const Error& e) {
    fail("alignment_loss '", name, "': ", e.what());
  }
}

void scores(Checker& c, const std::string& name, const RunContext& context) {
  const auto loss = build_loss(name, context, 0);
  LossBatch b = batch_for(name, context);
  const auto terms = compute(*loss, name, b.inputs);
  c.expect(!terms.per_residue.empty(), "at least one per-residue part");
  if (!c.expect(terms.index.defined(), "an index")) return;
  const auto index = terms.index.to(torch::kInt64);
  if (!c.expect(index.dim() == 1, "the index is [N]")) return;
  if (index.numel() > 0) {
    c.expect(index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < kBatch * kTokens,
             "index entries lie in B*T");
    if (index.max().item<int64_t>() < kBatch * kTokens && index.min().item<int64_t>() >= 0) {
      c.expect(b.inputs.residue_mask.flatten().index_select(0, index).all().item<bool>(),
               "scores real residues only (never a special or pad)");
      if (loss->scores_masked_residues())
        c.expect((b.inputs.mlm_labels.flatten().index_select(0, index) != -100).all().item<bool>(),
                 "scores_masked_residues(): scores masked residues only");
    }
  }
  torch::Tensor total = torch::zeros({});
  for (const auto& [part, values] : terms.per_residue) {
    Checker::Context in(c, "part " + part);
    c.expect(values.dim() == 1, "per-residue values are [N]");
    c.expect(values.dim() == 1 && values.size(0) == index.size(0), "one value per index entry");
    c.expect(torch::isfinite(values).all().item<bool>(), "finite");
    total = total + values.sum();
  }
  if (c.expect(total.requires_grad(), "the loss reaches the pLM outputs (it has a gradient)")) total.backward();
  for (const auto& grad : {b.plm.last_hidden.grad(), b.plm.logits.grad()})
    if (grad.defined()) c.expect(torch::isfinite(grad).all().item<bool>(), "finite gradients");
  for (const auto& [metric, value] : loss->metrics()) c.expect(std::isfinite(value), "metric " + metric + " is finite");
}

void deterministic(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto first = build_loss(name, context, 1);
  const auto other = build_loss(name, context, 2);  // other initial weights
  LossBatch b = batch_for(name, context);
  const auto a = compute(*first, name, b.inputs);
  const auto again = compute(*first, name, b.inputs);
  for (const auto& [part, values] : a.per_residue) {
    const auto it = again.per_residue.find(part);
    c.expect(it != again.per_residue.end() && torch::equal(values, it->second), "deterministic part " + part);
  }
  // Copying the parameters (what heads.safetensors stores) reproduces the loss exactly.
  auto source = first->named_parameters();
  for (auto& p : other->named_parameters()) p.value().copy_(source[p.key()]);
  for (auto& p : other->named_buffers()) p.value().copy_(first->named_buffers()[p.key()]);
  const auto copied = compute(*other, name, b.inputs);
  for (const auto& [part, values] : a.per_residue) {
    const auto it = copied.per_residue.find(part);
    if (!c.expect(it != copied.per_residue.end(), "part " + part + " after copying the parameters")) continue;
    const double diff = (values - it->second).abs().max().item<double>();
    c.expect(diff == 0.0,
             text("part ", part, ": copying the parameters and buffers reproduces it (max diff ", diff, ")"));
  }
}

void no_scorable(Checker& c, const std::string& name, const RunContext& context) {
  const auto loss = build_loss(name, context, 0);
  for (int64_t residues : {0, 1}) {
    Checker::Context in(c, text(residues, " residue(s) per protein"));
    LossBatch b = batch_for(name, context, residues, residues);
    std::string message;
    LossTerms terms;
    bool returned = false;
    c.expect(succeeds_or_reports(
                 [&] {
                   terms = loss->compute(b.inputs);
                   returned = true;
                 },
                 &message),
             "returns or throws sapling::Error, not: " + message);
    if (returned)
      for (const auto& [part, values] : terms.per_residue) {
        c.expect(terms.index.defined() && values.size(0) == terms.index.size(0),
                 "part " + part + ": one value per index entry");
        c.expect(torch::isfinite(values).all().item<bool>(), "part " + part + " is finite");
      }
  }
}

// A batch without one of the declared fields (data that lacks it) is a sapling::Error, never std::out_of_range.
void missing_field(Checker& c, const std::string& name, const RunContext& context) {
  const auto& declared = AlignmentLossRegistry::instance().find(name).fields;
  bool any = false;
  for (const auto& field : declared) {
    if (field == loss_fields::kStructureTokens || field == loss_fields::kPgnn) continue;
    any = true;
    Checker::Context in(c, "without field '" + field + "'");
    const auto loss = build_loss(name, context, 0);
    LossBatch b = batch_for(name, context);
    b.inputs.fields.erase(field);
    try {
      loss->compute(b.inputs);
      // Returning is fine (the field may be optional); a crash or a foreign exception is not.
    } catch (const Error& e) {
      c.expect(std::string(e.what()).find(field) != std::string::npos, text("the error names the field: ", e.what()));
    } catch (const std::exception& e) {
      c.failure(text("a missing field throws a non-sapling::Error (read it with LossInputs::field(name)): ", e.what()));
    }
  }
  if (!any) c.skip("declares no field beyond the named LossInputs members");
}

}  // namespace loss_impl

std::vector<Check> loss_checks() {
  using namespace loss_impl;
  const std::string kind = AlignmentLoss::kind;
  return {{kind, "scores real residues with one value per index entry, finite values and gradients", scores},
          {kind, "deterministic, and its parameters carry its whole state", deterministic},
          {kind, "a batch with no scorable residue gives empty terms or a clear error", no_scorable},
          {kind, "a batch without a declared field is a clear error naming it", missing_field}};
}

}  // namespace sapling::conformance
