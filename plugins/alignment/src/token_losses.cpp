// The per-token classification losses: MLM on the pLM's own logits, structure-token prediction with an MLP head.
#include <algorithm>

#include "alignment.hpp"
#include "sapling/error.hpp"
#include "sapling/masking.hpp"

namespace sapling::alignment {

namespace {
// The published head outside `sapling train` (no data to size it from): Foldseek's 20 3Di states in the
// ESM-like vocabulary (StructureVocabulary::esm_like), 26 ids, whose <cls>, <pad>, <eos> are 0, 1, 2.
constexpr int64_t kPublishedClasses = 26;
const std::vector<int64_t> kPublishedIgnoredIds = {0, 1, 2};
}  // namespace

torch::Tensor flat_index(const torch::Tensor& mask) { return mask.to(torch::kBool).flatten().nonzero().squeeze(1); }

torch::Tensor gather_rows(const torch::Tensor& states, const torch::Tensor& index) {
  return states.reshape({-1, states.size(-1)}).index_select(0, index.to(states.device()));
}

void require_bt(const torch::Tensor& t, const torch::Tensor& like, const char* loss, const char* input) {
  if (!t.defined()) fail(loss, " loss: LossInputs.", input, " is missing");
  if (t.dim() != 2 || (like.defined() && t.sizes() != like.sizes().slice(0, 2)))
    fail(loss, " loss: LossInputs.", input, " has shape ", t.sizes(), ", expected [B, T] = ",
         like.defined() ? like.sizes().slice(0, 2) : t.sizes());
}

const torch::Tensor& require_last_hidden(const LossInputs& in, int64_t dim, const char* loss, const char* dim_option) {
  if (!in.plm || !in.plm->last_hidden.defined()) fail(loss, " loss: the pLM output has no last_hidden");
  const auto& hidden = in.plm->last_hidden;
  if (hidden.size(-1) != dim)
    fail(loss, " loss: the pLM hidden size is ", hidden.size(-1), " but option ", dim_option, " is ", dim);
  return hidden;
}

namespace {

// Cross-entropy per row in float32 (bf16 logits lose too much in log-softmax).
torch::Tensor per_row_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets, const char* loss) {
  if (targets.numel() > 0) {
    const int64_t lo = targets.min().item<int64_t>(), hi = targets.max().item<int64_t>();
    if (lo < 0 || hi >= logits.size(1))
      fail(loss, " loss: target id ", lo < 0 ? lo : hi, " outside the ", logits.size(1), " classes");
  }
  return torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32), targets.to(logits.device(), torch::kInt64),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
}

// MLM: the pLM's own LM head, scored where mlm_labels != -100.
class MlmLoss final : public AlignmentLoss {
 public:
  LossTerms compute(const LossInputs& in) override {
    if (!in.plm || !in.plm->logits.defined())
      fail("mlm loss: the pLM output has no logits (request logits in the forward pass)");
    const auto& logits = in.plm->logits;
    require_bt(in.mlm_labels, logits, "mlm", "mlm_labels");
    LossTerms terms;
    terms.index = flat_index(in.mlm_labels != kIgnoreLabel);
    const auto rows = gather_rows(logits, terms.index);
    const auto targets = in.mlm_labels.flatten().index_select(0, terms.index);
    terms.per_residue["mlm"] = per_row_cross_entropy(rows, targets, "mlm");
    return terms;
  }
  bool selectable() const override { return false; }
  bool scores_masked_residues() const override { return true; }
};

// Structure tokens: MLP (H -> H, ReLU, H -> V) on the L2-normalised last
// hidden state at every real residue whose target is known.
class StructureTokenLoss final : public AlignmentLoss {
 public:
  StructureTokenLoss(int64_t input_dim, int64_t hidden_dim, int64_t num_classes, bool normalize_input,
                     std::vector<int64_t> ignore_ids)
      : input_dim_(input_dim), normalize_input_(normalize_input), ignore_ids_(std::move(ignore_ids)) {
    hidden_layer_ = register_module("hidden_layer", torch::nn::Linear(input_dim, hidden_dim));
    output_layer_ = register_module("output_layer", torch::nn::Linear(hidden_dim, num_classes));
  }

  LossTerms compute(const LossInputs& in) override {
    const auto& hidden = require_last_hidden(in, input_dim_, "structure_token", "input_dim");
    require_bt(in.residue_mask, hidden, "structure_token", "residue_mask");
    require_bt(in.structure_tokens, hidden, "structure_token", "structure_tokens");
    auto targets = in.structure_tokens.to(torch::kInt64);
    auto keep = in.residue_mask.to(torch::kBool).logical_and(targets != kIgnoreLabel);
    if (!ignore_ids_.empty())
      keep = keep.logical_and(torch::isin(targets, torch::tensor(ignore_ids_).to(targets.device())).logical_not());
    LossTerms terms;
    terms.index = flat_index(keep);
    auto h = gather_rows(hidden, terms.index).to(hidden_layer_->weight.scalar_type());
    if (normalize_input_) h = torch::nn::functional::normalize(h, torch::nn::functional::NormalizeFuncOptions().dim(-1));
    const auto logits = output_layer_(torch::relu(hidden_layer_(h)));
    terms.per_residue["structure_token"] =
        per_row_cross_entropy(logits, targets.flatten().index_select(0, terms.index), "structure_token");
    return terms;
  }
  bool selectable() const override { return true; }

 private:
  int64_t input_dim_;
  bool normalize_input_;
  std::vector<int64_t> ignore_ids_;
  torch::nn::Linear hidden_layer_{nullptr}, output_layer_{nullptr};
};

void add_weight(OptionSchema& schema, double weight) {
  schema.add("weight", OptionType::Float)
      .default_value(weight)
      .min(0.0)
      .doc("weight of this loss in the total (read by the trainer)");
}

}  // namespace

OptionSchema mlm_schema() {
  OptionSchema schema;
  add_weight(schema, 1.0);
  return schema;
}

OptionSchema structure_token_schema() {
  OptionSchema schema;
  add_weight(schema, 0.5);
  schema.add("input_dim", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("pLM hidden size H (ESM2-650M: 1280); 0 = the trained model's (`sapling train` gives it)");
  schema.add("hidden_dim", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("width of the MLP's hidden layer; 0 = input_dim (published: H -> H -> V)");
  schema.add("num_classes", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("structure-token vocabulary size V (the data's tokenizer's ids: states + 6 in the usual layout; 3Di: 26, "
           "VQ-512: 518); 0 = from the data's tokenizer in `sapling train`, else 26");
  schema.add("normalize_input", OptionType::Bool)
      .default_value(true)
      .doc("L2-normalise the last hidden state before the head (published)");
  schema.add("ignore_ids", OptionType::IntList)
      .default_value(kPublishedIgnoredIds)
      .doc("target ids that never count (default <cls>, <pad>, <eos>); -100 is always ignored");
  return schema;
}

std::shared_ptr<AlignmentLoss> make_mlm_loss(const Options&, const LossContext&) { return std::make_shared<MlmLoss>(); }

std::shared_ptr<AlignmentLoss> make_structure_token_loss(const Options& options, const LossContext& context) {
  const int64_t input_dim = options.get_int("input_dim") > 0 ? options.get_int("input_dim") : context.model_width;
  if (input_dim < 1) fail("structure_token: input_dim must be set; `sapling train` takes 0 from the model");
  const int64_t hidden = options.get_int("hidden_dim");
  // The head predicts the data's tokenizer's ids: a recipe's explicit size must agree with them.
  const auto& vocabulary = context.structure_vocabulary;
  int64_t num_classes = options.get_int("num_classes");
  if (num_classes > 0 && !vocabulary.empty() && num_classes != vocabulary.num_classes)
    fail(options.origin("num_classes"), ": num_classes = ", num_classes, " but the data's structure tokens have ",
         vocabulary.num_states, " states, i.e. ", vocabulary.num_classes,
         " classes in their tokenizer's vocabulary; remove the key (0 = from the data) or set ", vocabulary.num_classes);
  if (num_classes == 0) num_classes = vocabulary.empty() ? kPublishedClasses : vocabulary.num_classes;
  return std::make_shared<StructureTokenLoss>(input_dim, hidden > 0 ? hidden : input_dim, num_classes,
                                              options.get_bool("normalize_input"), options.get_int_list("ignore_ids"));
}

}  // namespace sapling::alignment
