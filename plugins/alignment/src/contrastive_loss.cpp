// Residue contrastive loss: one N x N InfoNCE matrix between projected pLM and pGNN residue embeddings.
#include <algorithm>
#include <cmath>

#include "alignment.hpp"
#include "sapling/error.hpp"

namespace sapling::alignment {

namespace {

namespace F = torch::nn::functional;

// z_s = normalize(W_s normalize(h)), z_g = normalize(W_g g), logits =
// max(exp(t), min_logit_scale) * z_s z_g^T over every real residue with a pGNN
// (non-zero) embedding in the micro-batch; cross-entropy per row against the diagonal, in
// both directions. The clamp mirrors the published `clamp(exp(t), min=0.01)`:
// below the floor the scale is constant and t gets no gradient.
class ResidueContrastiveLoss final : public AlignmentLoss {
 public:
  ResidueContrastiveLoss(int64_t plm_dim, int64_t pgnn_dim, int64_t projection_dim, double initial_temperature,
                         double min_logit_scale, bool learnable_temperature, bool normalize_input, bool bias)
      : plm_dim_(plm_dim), pgnn_dim_(pgnn_dim), min_logit_scale_(min_logit_scale), normalize_input_(normalize_input) {
    seq_projection_ = register_module(
        "seq_projection", torch::nn::Linear(torch::nn::LinearOptions(plm_dim, projection_dim).bias(bias)));
    struct_projection_ = register_module(
        "struct_projection", torch::nn::Linear(torch::nn::LinearOptions(pgnn_dim, projection_dim).bias(bias)));
    logit_scale_ = register_parameter("logit_scale", torch::full({}, std::log(1.0 / initial_temperature)),
                                      learnable_temperature);
  }

  LossTerms compute(const LossInputs& in) override {
    const auto& hidden = require_last_hidden(in, plm_dim_, "residue_contrastive", "plm_dim");
    require_bt(in.residue_mask, hidden, "residue_contrastive", "residue_mask");
    if (!in.pgnn_embeddings.defined()) fail("residue_contrastive loss: LossInputs.pgnn_embeddings is missing");
    if (in.pgnn_embeddings.dim() != 3 || in.pgnn_embeddings.sizes().slice(0, 2) != hidden.sizes().slice(0, 2) ||
        in.pgnn_embeddings.size(2) != pgnn_dim_)
      fail("residue_contrastive loss: pgnn_embeddings has shape ", in.pgnn_embeddings.sizes(), ", expected [",
           hidden.size(0), ", ", hidden.size(1), ", ", pgnn_dim_, "] (option pgnn_dim)");
    // LossInputs documents pgnn_embeddings as "zeros where unknown": a residue
    // whose pGNN row is entirely zero (no CA, no cached embedding) has no
    // partner and is left out of the matrix, rows and columns alike.
    const auto has_embedding = in.pgnn_embeddings.ne(0).any(-1).to(in.residue_mask.device());
    const auto keep = in.residue_mask.to(torch::kBool).logical_and(has_embedding);
    LossTerms terms;
    terms.index = flat_index(keep);
    const auto dtype = seq_projection_->weight.scalar_type();
    auto h = gather_rows(hidden, terms.index).to(dtype);
    if (normalize_input_) h = F::normalize(h, F::NormalizeFuncOptions().dim(-1));
    const auto g = gather_rows(in.pgnn_embeddings, terms.index).to(dtype);
    const auto z_s = F::normalize(seq_projection_(h), F::NormalizeFuncOptions().dim(-1)).to(torch::kFloat32);
    const auto z_g = F::normalize(struct_projection_(g), F::NormalizeFuncOptions().dim(-1)).to(torch::kFloat32);
    const auto logits = logit_scale().to(torch::kFloat32) * z_s.mm(z_g.t());
    const auto diagonal = torch::arange(logits.size(0), torch::TensorOptions().dtype(torch::kInt64).device(logits.device()));
    const auto ce = F::CrossEntropyFuncOptions().reduction(torch::kNone);
    terms.per_residue["seq_to_struct"] = F::cross_entropy(logits, diagonal, ce);
    terms.per_residue["struct_to_seq"] = F::cross_entropy(logits.t(), diagonal, ce);
    return terms;
  }
  bool selectable() const override { return true; }
  // The learned scale exp(t), before the min_logit_scale floor.
  std::map<std::string, double> metrics() const override { return {{"logit_scale", logit_scale_.exp().item<double>()}}; }

  torch::Tensor logit_scale() const { return logit_scale_.exp().clamp_min(min_logit_scale_); }

 private:
  int64_t plm_dim_, pgnn_dim_;
  double min_logit_scale_;
  bool normalize_input_;
  torch::nn::Linear seq_projection_{nullptr}, struct_projection_{nullptr};
  torch::Tensor logit_scale_;  // t; the scale is exp(t)
};

}  // namespace

OptionSchema residue_contrastive_schema() {
  OptionSchema schema;
  schema.add("weight", OptionType::Float)
      .default_value(0.5)
      .min(0.0)
      .doc("weight of this loss in the total; the two directions are averaged (read by the trainer)");
  schema.add("plm_dim", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("pLM hidden size (ESM2-650M: 1280); 0 = the trained model's (`sapling train` gives it)");
  schema.add("pgnn_dim", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("pGNN embedding size (GearNet: 512; AF2 single representation: 384); 0 = the data's (`sapling train` gives it)");
  schema.add("projection_dim", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("shared projection size; 0 = min(plm_dim, pgnn_dim) (published)");
  schema.add("initial_temperature", OptionType::Float)
      .default_value(0.07)
      .min(0.0, true)
      .doc("initial temperature tau; the learnable t starts at log(1/tau)");
  schema.add("min_logit_scale", OptionType::Float)
      .default_value(0.01)
      .min(0.0)
      .doc("floor of the logit scale exp(t) (published clamp(exp(t), min=0.01); no upper clip)");
  schema.add("learnable_temperature", OptionType::Bool).default_value(true).doc("train t (published: yes)");
  schema.add("normalize_input", OptionType::Bool)
      .default_value(true)
      .doc("L2-normalise the pLM hidden state before its projection (published)");
  schema.add("projection_bias", OptionType::Bool).default_value(true).doc("give both projections a bias");
  return schema;
}

std::shared_ptr<AlignmentLoss> make_residue_contrastive_loss(const Options& options, const LossContext& context) {
  const int64_t plm_dim = options.get_int("plm_dim") > 0 ? options.get_int("plm_dim") : context.model_width;
  const int64_t pgnn_dim = options.get_int("pgnn_dim") > 0 ? options.get_int("pgnn_dim") : context.structure_encoder_width;
  if (plm_dim < 1 || pgnn_dim < 1)
    fail("residue_contrastive: plm_dim and pgnn_dim must be set (", plm_dim, ", ", pgnn_dim,
         "); `sapling train` takes 0 from the model and the data's pGNN embeddings");
  const int64_t projection = options.get_int("projection_dim");
  return std::make_shared<ResidueContrastiveLoss>(
      plm_dim, pgnn_dim, projection > 0 ? projection : std::min(plm_dim, pgnn_dim), options.get_float("initial_temperature"),
      options.get_float("min_logit_scale"), options.get_bool("learnable_temperature"), options.get_bool("normalize_input"),
      options.get_bool("projection_bias"));
}

}  // namespace sapling::alignment
