// Private to the trainer: the objects a recipe describes (model, heads, reference, selector, data), built and checked.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sapling/dataset.hpp"
#include "sapling/fasta.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/internal/loss_combination.hpp"
#include "sapling/masking.hpp"
#include "sapling/recipe.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/internal/training_batches.hpp"

namespace sapling::training {

// One member of [losses]: its name in the recipe, module and weight.
struct LossHead {
  std::string name;    // "mlm", "structure_token", "contrastive", ...
  std::string component;  // the registry name (the recipe's `component`)
  std::shared_ptr<AlignmentLoss> loss;
  double weight = 1.0;
};

// Proteins of the prepared dataset with the per-residue inputs the losses
// need: structure tokens and pGNN embeddings from the dataset when it has
// them, else computed once per chain by [structure_tokens] / [pgnn] and kept;
// fields of plugins' FieldProviders are likewise computed once per chain.
// Or, with [data] sequences, the records of a FASTA file (MLM only).
class ExampleSource {
 public:
  ExampleSource(const Recipe& recipe, const Options& data, const torch::Device& device);
  ~ExampleSource();

  // Chains of `split` passing the data filters, in dataset order.
  std::vector<size_t> chains(const std::string& split) const;
  int64_t length(size_t chain) const;
  TrainingExample example(size_t chain);
  bool has_tokens() const { return tokens_from_dataset_ || tokenizer_ != nullptr; }
  bool has_embeddings() const { return embedding_dim_ > 0; }
  int64_t embedding_dim() const { return embedding_dim_; }
  StructureTokenLayout token_layout() const { return layout_; }
  // The dataset folder or FASTA file, for messages.
  std::string name() const;
  // One line for the run summary: where the tokens and embeddings come from.
  std::string describe() const;

 private:
  // True when the component gives what the dataset stores on its first chains.
  bool dataset_reproduces(const StructureTokenizer& tokenizer) const;
  bool dataset_reproduces(StructureEncoder& encoder) const;

  std::optional<StructureDataset> dataset_;
  std::vector<FastaRecord> records_;  // sequence-only data
  std::vector<std::string> record_splits_;
  std::string fasta_name_;
  bool high_quality_only_ = false;
  int64_t min_residues_ = 1;
  bool tokens_from_dataset_ = false, embeddings_from_dataset_ = false;
  std::shared_ptr<StructureTokenizer> tokenizer_;
  std::string tokenizer_name_, pgnn_name_;
  std::shared_ptr<StructureEncoder> pgnn_;
  torch::Device pgnn_device_;
  int64_t embedding_dim_ = 0;
  StructureTokenLayout layout_;
  std::map<size_t, torch::Tensor> token_cache_, embedding_cache_;
  std::map<std::string, std::map<size_t, torch::Tensor>> field_cache_;  // provider fields: field -> chain -> [L, ...]
  std::set<std::string> extra_fields_;  // per-residue fields the losses read beyond tokens and embeddings
};

// The per-residue fields the recipe's losses read beyond structure tokens and
// pGNN embeddings (Registration::fields; loss_fields.cpp).
std::set<std::string> extra_loss_fields(const Recipe& recipe);

// The recipe turned into objects, all on `device`.
struct TrainingSetup {
  torch::Device device = torch::kCPU;
  torch::ScalarType autocast = torch::kFloat32;  // kBFloat16 = bf16 autocast (CUDA, or the CPU when asked)
  // The dtype of the trainee's, its heads' and the reference's parameters: kBFloat16 with precision = "bf16-pure"
  // (the official DeepSpeed bf16: no autocast, everything in bf16, float32 master weights in the optimiser).
  torch::ScalarType parameters = torch::kFloat32;
  std::shared_ptr<SequenceEncoder> model;
  std::vector<LossHead> losses;
  std::string selector_name;
  std::shared_ptr<ResidueSelector> selector;  // null: keep every residue
  double selection_ratio = 1.0;               // for the published normalisation
  std::shared_ptr<SequenceEncoder> reference;  // frozen, eval mode; null unless the selector needs it
  std::vector<LossHead> reference_losses;
  std::unique_ptr<ExampleSource> data;
  MaskingOptions masking;
  NormalizationSettings normalization;
  // > 0: the published constant's batch size (proteins per micro-batch with
  // batching = "proteins", even for a last, smaller batch); 0: the batch's own count.
  int64_t normalization_proteins = 0;
  int64_t reference_passes = 0;  // reference forward passes so far (validation logs its share)
};

// `device`: the process's device, as the trainer resolved it with its process group (process_device()).
TrainingSetup build_setup(const Recipe& recipe, const torch::Device& device);

// "model.<key>" / "heads.<loss>.<key>" parameters of the trainee, in a fixed order.
std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(const TrainingSetup& setup);
// Loss-head weights as stored in heads.safetensors, and loading them back
// (fails naming the file and the first missing or mis-shaped key).
NamedTensors head_tensors(const std::vector<LossHead>& losses);
void load_heads(std::vector<LossHead>& heads, const std::filesystem::path& file);

// The losses of one micro-batch: the weighted total (differentiable) and
// per-term values and kept counts for the metrics.
struct MicroBatchLoss {
  CombinedLoss combined;
  std::map<std::string, int64_t> candidates;  // selected terms: residues scored before selection
};

// With `select` false every residue counts and the reference model is not run
// (the published validation: no selection, normalised without the ratio).
// With `trace`, every intermediate is appended to it by name (see inspect_first_batch in training.hpp).
MicroBatchLoss compute_losses(TrainingSetup& setup, const MicroBatch& batch, bool select = true,
                              NamedTensors* trace = nullptr);

}  // namespace sapling::training
