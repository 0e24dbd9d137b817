// The extension points: sequence encoders (pLMs), structure encoders (pGNNs), structure tokenizers,
// alignment losses, residue selectors and per-residue field providers. Plugins implement these; the core
// only talks to them.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/registry.hpp"
#include "sapling/structure.hpp"
#include "sapling/structure_vocabulary.hpp"
#include "sapling/tokenizer.hpp"

namespace sapling {

// ---------------------------------------------------------------- pLMs

// max_tokens() of a model without a hard length limit (rotary positions).
inline constexpr int64_t kNoTokenLimit = int64_t{1} << 40;

struct ForwardRequest {
  bool hidden_states = false;  // every layer's representation
  bool attentions = false;     // softmax attention maps [B, H, T, T] per layer (also needed for contacts)
  bool logits = true;          // LM head output [B, T, V]
  // Packed rows (several proteins end to end in one row, see packing.hpp):
  // [B, T] int64, the protein each token belongs to (any id unique within
  // the row; -1 at pad). Attention then stays within a protein and rotary
  // positions restart at each protein's BOS, so every protein's outputs equal
  // its outputs alone in a row. Undefined: one protein per row. Only for
  // encoders whose supports_packing() is true; not with attentions.
  torch::Tensor segments;
};

struct EncoderOutput {
  torch::Tensor last_hidden;                 // [B, T, D] the family's final representation
  std::vector<torch::Tensor> hidden_states;  // as the reference returns them (see representation())
  std::vector<torch::Tensor> attentions;     // one [B, H, T, T] per layer
  torch::Tensor logits;                      // [B, T, V]
};

// A protein language model. Implementations are torch modules so parameters,
// train()/eval() and to(device) work as in PyTorch.
class SAPLING_API SequenceEncoder : public torch::nn::Module {
 public:
  static constexpr const char* kind = "sequence_encoder";
  ~SequenceEncoder() override;

  virtual std::string family() const = 0;  // "esm2", "amplify", ...
  virtual const Tokenizer& tokenizer() const = 0;
  virtual int64_t hidden_size() const = 0;
  virtual int64_t num_layers() const = 0;
  virtual int64_t num_heads() const = 0;
  // Longest token sequence (specials included) the model accepts at all: the
  // size of a learned position table, or kNoTokenLimit for rotary positions
  // (training crops at the recipe's max_length then, as the published code does).
  virtual int64_t max_tokens() const = 0;
  // Tokens per sequence the model was pretrained on (specials included): the
  // default truncation of `sapling embed` and the evaluation window
  // (ESM2: 1024, i.e. the 1022 residues of fair-esm's esm-extract).
  virtual int64_t pretrained_tokens() const { return max_tokens(); }
  // True when forward() honours ForwardRequest::segments (packed rows). A
  // family that answers false is trained and embedded one protein per row.
  virtual bool supports_packing() const { return false; }

  // ids [B, T] int64, mask [B, T] bool (true at non-pad tokens).
  virtual EncoderOutput forward(const torch::Tensor& ids, const torch::Tensor& mask, const ForwardRequest& request) = 0;

  // Representation after `layer` in 0..num_layers() (0 = embeddings where the
  // family has them; num_layers() = the family's final representation).
  // Negative values count from the end (-1 = last). Needs hidden_states.
  virtual torch::Tensor representation(const EncoderOutput& out, int64_t layer) const = 0;

  // Contact probabilities [B, L, L] over residues (specials removed), from
  // the attention maps in `out` (request attentions). Padded rows are zero.
  virtual torch::Tensor contacts(const EncoderOutput& out, const torch::Tensor& ids, const torch::Tensor& mask) = 0;

  // HF-layout checkpoint folder: config.json + model.safetensors (or shards).
  virtual void load_pretrained(const std::filesystem::path& dir) = 0;
  virtual void save_pretrained(const std::filesystem::path& dir) const = 0;
  // Writes the family's Hugging Face tokenizer files into `dir` (vocab.txt or
  // tokenizer.json, tokenizer_config.json, special_tokens_map.json), so that
  // AutoTokenizer.from_pretrained(dir) works on a saved model folder. The
  // default writes nothing (a family without a released HF tokenizer).
  virtual void save_tokenizer(const std::filesystem::path& dir) const;

  // What the README.md model card of a saved folder says about the family.
  struct CardFacts {
    std::string licence;             // licence of the base weights ("mit"), "" when unknown
    bool trust_remote_code = false;  // transformers needs the release's modelling code
    std::string loading_note;        // Markdown paragraph after the loading snippet, or ""
  };
  virtual CardFacts card_facts() const { return {}; }

  // Parameters with and without weight decay (norms, biases, embeddings'
  // treatment is the family's choice).
  struct ParameterGroups {
    std::vector<torch::Tensor> decay, no_decay;
  };
  virtual ParameterGroups parameter_groups();
};

// ---------------------------------------------------------------- pGNNs

class SAPLING_API StructureEncoder : public torch::nn::Module {
 public:
  static constexpr const char* kind = "structure_encoder";
  ~StructureEncoder() override;
  virtual int64_t output_dim() const = 0;
  // Per-residue embeddings [L, output_dim()] for one chain; rows of residues
  // without a CA are zero.
  virtual torch::Tensor embed(const ChainStructure& chain) = 0;
  // embed() of each chain. The default calls embed() in turn; an encoder that
  // can run several chains at once (a disjoint union of their graphs, one
  // pass on a GPU) overrides it. `prepare` gives it chains up to a residue budget.
  virtual std::vector<torch::Tensor> embed_batch(const std::vector<ChainStructure>& chains);
  virtual void load_weights(const std::filesystem::path& file) = 0;
  virtual void save_weights(const std::filesystem::path& file) const = 0;
  // False for an encoder whose outputs are not learned here (precomputed
  // embeddings read from files): `prepare --pgnn` then needs no weights file.
  virtual bool needs_weights() const { return true; }
};

// ---------------------------------------------------------------- structure tokens

// The chains `sapling tokens` encodes from one structure file, with their FASTA names.
struct TokenizerFile {
  std::vector<ChainStructure> chains;
  std::vector<std::string> names;  // one per chain
  int skipped = 0;                 // chains the tokenizer's rules leave out (e.g. too short)
  std::string skip_rule;           // what `skipped` counts, for the summary line
};

class TrainableTokenizer;

class SAPLING_API StructureTokenizer {
 public:
  static constexpr const char* kind = "structure_tokenizer";
  virtual ~StructureTokenizer();
  // Alphabet of structure states (e.g. 20 letters for 3Di, or 512..4096 VQ codes).
  virtual int64_t num_states() const = 0;
  // Printable symbol of a state (3Di letters; VQ codes may use numbers).
  virtual std::string symbol(int64_t state) const = 0;
  // One state per residue of `chain` (length chain.length()); residues that
  // cannot be encoded get mask_state().
  virtual std::vector<int64_t> encode(const ChainStructure& chain) const = 0;
  virtual int64_t mask_state() const = 0;
  // The ids a structure-token head predicts for these states. The default is the ESM-like layout over
  // num_states(); a dataset's stored tokens without a buildable tokenizer get that default too.
  virtual StructureVocabulary vocabulary() const { return StructureVocabulary::esm_like(num_states()); }

  // True when encode() may run on several threads at once (`prepare` and
  // `tokens` then use a pool); false serialises the calls.
  virtual bool thread_safe() const { return true; }
  // Reads one structure file the way this tokenizer's reference tool does.
  // The default: every chain's residues that have a CA (chains without any
  // are skipped), named ENTRY_CHAIN, or ENTRY for a file with one chain,
  // where ENTRY is structure_entry_name(file) (structure_io.hpp).
  // Tokenizers that reproduce an external tool override it (Foldseek
  // createdb's view of PDB records and its chain rules).
  virtual TokenizerFile read_file(const std::filesystem::path& file) const;
  // Tag of `sapling tokens` output files: PREFIX.<tag>.fasta ("3di" for Foldseek).
  virtual std::string file_tag() const { return "tokens"; }
  // A tokenizer whose codebook is learned here (`sapling train-tokenizer`);
  // nullptr for fixed ones.
  virtual TrainableTokenizer* trainable() { return nullptr; }
};

// The training side of a learned tokenizer (VQ-VAE): `sapling train-tokenizer`
// runs an optimiser over parameters() on batches of chains, calls evaluate()
// on the held-out chains after every epoch and saves the weights that
// `[tokenizer] weights = FILE` (or `--tokenizer-option weights=FILE`) loads.
class SAPLING_API TrainableTokenizer {
 public:
  virtual ~TrainableTokenizer();
  virtual std::vector<torch::Tensor> parameters() = 0;
  // Training mode: loss() also updates the codebook (EMA) and restarts dead codes.
  virtual void set_training(bool on) = 0;
  // Scalar loss of one batch (autograd graph). Every random choice is drawn
  // from `generator`, so equal seeds give equal runs. `stats` receives the
  // batch's named parts (reconstruction, commitment, ...).
  virtual torch::Tensor loss(const std::vector<ChainStructure>& batch, at::Generator& generator,
                             std::map<std::string, double>& stats) = 0;
  // Quality over `chains` without training: reconstruction error, codebook
  // usage, code perplexity, ... (names are the tokenizer's).
  virtual std::map<std::string, double> evaluate(const std::vector<ChainStructure>& chains) = 0;
  virtual void save_weights(const std::filesystem::path& file) const = 0;
};

// ---------------------------------------------------------------- losses and selection

// What a loss sees for one micro-batch. `residue_mask` marks real residues
// (no specials, no pad). Targets are optional per loss.
struct LossInputs {
  const EncoderOutput* plm = nullptr;
  torch::Tensor ids;               // [B, T] the masked input
  torch::Tensor residue_mask;      // [B, T] bool
  torch::Tensor mlm_labels;        // [B, T] int64, -100 where not masked
  torch::Tensor structure_tokens;  // [B, T] int64, -100 where unknown (field "structure_tokens")
  torch::Tensor pgnn_embeddings;   // [B, T, G] float, zeros where unknown (field "pgnn")
  // Further per-residue fields by name, laid out like the tokens: [B, T, ...]
  // with each protein's residue k at its token position; specials, pad and
  // residues without a value hold NaN (floating fields) or 0. The trainer
  // fills those that a loss lists in Registration::fields. A structure
  // dataset provides "coords" [B, T, 5, 3] float32 (N, CA, C, O, CB) and
  // "bfactor" [B, T] float32 (CA B-factor, or pLDDT in predicted models).
  std::map<std::string, torch::Tensor> fields;
  // [B, T] int64: the protein of the micro-batch each token belongs to (0 .. proteins-1, in collation
  // order), -1 at pad. Padded batches: row b is protein b; packed rows hold several proteins end to end.
  // For per-protein quantities (a mean per chain) without guessing from residue_mask. Set by the trainer.
  torch::Tensor segments;

  // A field of `fields` by name, or a sapling::Error naming it where the batch has none (a loss reading a
  // field its Registration::fields does not list; the trainer adds the loss's name). Prefer it to fields.at().
  const torch::Tensor& field(const std::string& name) const {
    const auto it = fields.find(name);
    if (it == fields.end())
      fail("LossInputs has no per-residue field '", name, "' (a loss must list each field it reads in its "
           "Registration::fields; only those are filled)");
    return it->second;
  }
};

// Names of the per-residue fields a loss may declare (Registration::fields): these, or the name of a
// registered FieldProvider.
namespace loss_fields {
inline constexpr const char* kStructureTokens = "structure_tokens";  // LossInputs::structure_tokens
inline constexpr const char* kPgnn = "pgnn";                         // LossInputs::pgnn_embeddings
inline constexpr const char* kCoords = "coords";                     // LossInputs::fields
inline constexpr const char* kBfactor = "bfactor";                   // LossInputs::fields
}  // namespace loss_fields

// A per-residue quantity computed from one chain's structure, registered under the name of the field it
// provides (Registry<FieldProvider>), so a loss that lists that name in Registration::fields gets it in
// LossInputs::fields from any structure dataset without a change to the core. The trainer builds it with its
// schema's defaults and computes each chain once (sapling::compute_field in fields.hpp does one chain).
class SAPLING_API FieldProvider {
 public:
  static constexpr const char* kind = "field_provider";
  virtual ~FieldProvider();
  // [L, residue_shape()...] of dtype() for `chain` (L = chain.length()); a floating field holds NaN where a
  // residue has no value (e.g. no CA). May run on any thread; must be deterministic.
  virtual torch::Tensor compute(const ChainStructure& chain) const = 0;
  virtual torch::ScalarType dtype() const { return torch::kFloat32; }
  virtual std::vector<int64_t> residue_shape() const { return {}; }  // {} = one value per residue
};

// Per-residue loss vectors, so a selector can keep or drop residues.
struct LossTerms {
  // name -> per-residue loss [N] over the residues in `index`; names are the
  // selectable parts (e.g. "seq_to_struct", "struct_to_seq").
  std::map<std::string, torch::Tensor> per_residue;
  torch::Tensor index;  // [N] flat indices into B*T of the residues scored
};

class SAPLING_API AlignmentLoss : public torch::nn::Module {
 public:
  static constexpr const char* kind = "alignment_loss";
  ~AlignmentLoss() override;
  virtual LossTerms compute(const LossInputs& inputs) = 0;
  virtual bool selectable() const = 0;  // MLM: false
  // True for a loss scored only at the masked residues (MLM): the published
  // constant normalisation then expects the mask probability's share of them.
  virtual bool scores_masked_residues() const { return false; }
  // Values the trainer logs on every step as "<head>.<name>" (e.g. a learned
  // temperature); computed without gradients.
  virtual std::map<std::string, double> metrics() const { return {}; }
};

// What the run fixes about a loss when `sapling train` builds it (the factory's second argument): sizes its
// heads take from the model and the data rather than from options.
struct LossContext {
  int64_t model_width = 0;              // the trained pLM's hidden size (EncoderOutput::last_hidden's D)
  int64_t structure_encoder_width = 0;  // pGNN embedding width G; 0: the data has no pGNN embeddings
  StructureVocabulary structure_vocabulary;  // the data's tokenizer's ids; empty(): no structure tokens
};

// An alignment loss's factory takes the run's LossContext beside its options.
template <>
struct FactoryOf<AlignmentLoss> {
  using type = std::function<std::shared_ptr<AlignmentLoss>(const Options&, const LossContext&)>;
};

class SAPLING_API ResidueSelector {
 public:
  static constexpr const char* kind = "residue_selector";
  virtual ~ResidueSelector();
  // Returns a [N] bool mask of the residues to keep, given the current model's
  // per-residue loss and (for reference-based selectors) the reference's.
  virtual torch::Tensor select(const torch::Tensor& loss, const torch::Tensor& reference_loss) const = 0;
  virtual bool needs_reference() const = 0;
  // True for a selector that keeps every residue: the trainer then skips
  // selection (and its kept-fraction metrics) altogether.
  virtual bool keeps_everything() const { return false; }
};

// Registries (defined once in the core).
extern template class Registry<SequenceEncoder>;
extern template class Registry<StructureEncoder>;
extern template class Registry<StructureTokenizer>;
extern template class Registry<AlignmentLoss>;
extern template class Registry<ResidueSelector>;
extern template class Registry<FieldProvider>;

using SequenceEncoderRegistry = Registry<SequenceEncoder>;
using StructureEncoderRegistry = Registry<StructureEncoder>;
using StructureTokenizerRegistry = Registry<StructureTokenizer>;
using AlignmentLossRegistry = Registry<AlignmentLoss>;
using ResidueSelectorRegistry = Registry<ResidueSelector>;
using FieldProviderRegistry = Registry<FieldProvider>;

}  // namespace sapling
