// Builds the trainer's objects from a validated recipe and computes one micro-batch's selected, weighted losses.
#include "trainer_setup.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>

#include "sapling/autocast.hpp"
#include "sapling/compute_dtype.hpp"
#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/fields.hpp"
#include "sapling/internal/training.hpp"
#include "sapling/internal/training_checkpoint.hpp"

namespace sapling::training {

namespace {

std::vector<LossHead> build_losses(const Recipe& recipe, const LossContext& context) {
  std::vector<LossHead> heads;
  for (const auto& member : recipe.group_members("losses")) {
    auto [component, options] = recipe.component("losses." + member);
    LossHead head;
    head.name = member;
    head.component = component;
    head.weight = options.has("weight") ? options.get_float("weight") : 1.0;
    try {
      head.loss = AlignmentLossRegistry::instance().create(component, options, context);
    } catch (const Error&) {
      rethrow_with_context("[losses." + member + "]");
    }
    heads.push_back(std::move(head));
  }
  if (heads.empty()) fail(recipe.path().string(), ": no [losses.*] tables: nothing to train (add at least [losses.mlm] component = \"mlm\")");
  return heads;
}

std::shared_ptr<SequenceEncoder> build_encoder(const Recipe& recipe, const std::string& section) {
  const auto [plugin, options] = recipe.component(section);
  try {
    return SequenceEncoderRegistry::instance().create(plugin, options);
  } catch (const Error&) {
    rethrow_with_context("[" + section + "]");
  }
}

}  // namespace

// ---------------------------------------------------------------- ExampleSource

ExampleSource::ExampleSource(const Recipe& recipe, const Options& data, const torch::Device& device)
    : pgnn_device_(device) {
  high_quality_only_ = data.get_bool("high_quality_only");
  min_residues_ = data.get_int("min_residues");
  if (data.has("dataset") == data.has("sequences"))
    fail(recipe.path().string(), ": [data] needs exactly one of 'dataset' (a folder from `sapling prepare`) or 'sequences' (a FASTA file)");
  if (data.has("sequences")) {
    const auto file = data.get_path("sequences");
    if (!std::filesystem::exists(file)) fail(data.origin("sequences"), ": [data] sequences '", file.string(), "' does not exist");
    fasta_name_ = file.string();
    FastaOptions options;
    options.allow_duplicate_labels = true;  // splits go by label, duplicates land together
    // Training sets are rarely clean: skip and report bad records (empty header, bad characters).
    options.skip_bad_records = true;
    FastaReport report;
    records_ = read_fasta(file, options, &report);
    for (size_t i = 0; i < report.skipped.size() && i < 10; ++i) warn("skipped ", report.skipped[i]);
    if (report.skipped.size() > 10) warn("skipped ", report.skipped.size() - 10, " more bad records of ", file.string());
    if (records_.empty()) fail(data.origin("sequences"), ": [data] sequences '", file.string(), "' holds no usable record");
    const double fraction = data.get_float("valid_fraction");
    for (const auto& r : records_) record_splits_.push_back(assign_split(r.label, fraction, 0));
    if (high_quality_only_) fail(data.origin("high_quality_only"), ": [data] high_quality_only needs a structure dataset");
    return;
  }
  const auto dir = data.get_path("dataset");
  if (!std::filesystem::exists(dir))
    fail(data.origin("dataset"), ": [data] dataset '", dir.string(),
         "' does not exist; create it with `sapling prepare STRUCTURES... --out ", dir.string(), " --tokenizer NAME`");
  dataset_.emplace(dir);
  // The recipe's [structure_tokens] / [pgnn] decide; what the dataset stores is a cache of them, used when the
  // recipe's component reproduces it (checked on a few chains), so an ablation with another tokenizer or pGNN
  // never trains on the dataset's stale tokens or embeddings.
  // A component that cannot be built (e.g. its weights are elsewhere) leaves the dataset's values in use.
  const auto build_or_keep_stored = [&](const char* section, bool stored, auto create) {
    try {
      return create();
    } catch (const Error& e) {
      if (!stored) throw;
      info("[", section, "] is not built (", e.what(), "): using what ", dir.string(), " stores");
      return decltype(create())();
    }
  };
  std::shared_ptr<StructureTokenizer> recipe_tokenizer;
  if (recipe.has_section("structure_tokens")) {
    const auto [plugin, options] = recipe.component("structure_tokens");
    tokenizer_name_ = plugin;
    recipe_tokenizer = build_or_keep_stored("structure_tokens", dataset_->has_tokens(), [&, &plugin = plugin, &options = options] {
      return StructureTokenizerRegistry::instance().create(plugin, options);
    });
  }
  tokens_from_dataset_ = dataset_->has_tokens() && (!recipe_tokenizer || dataset_reproduces(*recipe_tokenizer));
  if (tokens_from_dataset_) {
    // The recipe's tokenizer (it reproduces the stored tokens) describes their ids; without one, the
    // dataset's states get the default layout (StructureTokenizer::vocabulary()).
    const auto states = static_cast<int64_t>(dataset_->token_symbols().size());
    layout_.vocabulary = recipe_tokenizer ? recipe_tokenizer->vocabulary() : StructureVocabulary::esm_like(states);
    layout_.mask_state = dataset_->token_mask_state();
    tokenizer_name_ = dataset_->tokenizer();
  } else if (recipe_tokenizer) {
    if (dataset_->has_tokens())
      info("[structure_tokens] ", tokenizer_name_, " does not reproduce the tokens stored in ", dir.string(), " (",
           dataset_->tokenizer(), "): computing its own once per chain");
    tokenizer_ = recipe_tokenizer;
    layout_.vocabulary = tokenizer_->vocabulary();
    layout_.mask_state = tokenizer_->mask_state();
  }
  extra_fields_ = extra_loss_fields(recipe);
  std::shared_ptr<StructureEncoder> recipe_pgnn;
  if (recipe.has_section("pgnn")) {
    const auto [plugin, options] = recipe.component("pgnn");
    pgnn_name_ = plugin;
    recipe_pgnn = build_or_keep_stored("pgnn", dataset_->has_embeddings(), [&, &plugin = plugin, &options = options] {
      return StructureEncoderRegistry::instance().create(plugin, options);
    });
  }
  if (recipe_pgnn) {
    recipe_pgnn->eval();
    recipe_pgnn->to(device);
    for (auto& p : recipe_pgnn->parameters()) p.set_requires_grad(false);
  }
  embeddings_from_dataset_ = dataset_->has_embeddings() && (!recipe_pgnn || dataset_reproduces(*recipe_pgnn));
  if (embeddings_from_dataset_) {
    embedding_dim_ = dataset_->embedding_dim();
  } else if (recipe_pgnn) {
    if (dataset_->has_embeddings())
      info("[pgnn] ", pgnn_name_, " does not reproduce the embeddings stored in ", dir.string(),
           ": computing its own once per chain");
    pgnn_ = recipe_pgnn;
    embedding_dim_ = pgnn_->output_dim();
  }
}

namespace {
constexpr size_t kChainsChecked = 3;  // enough to tell two tokenizers or encoders apart, cheap for any
}  // namespace

bool ExampleSource::dataset_reproduces(const StructureTokenizer& tokenizer) const {
  if (static_cast<int64_t>(dataset_->token_symbols().size()) != tokenizer.num_states() ||
      dataset_->token_mask_state() != tokenizer.mask_state())
    return false;
  for (size_t i = 0; i < std::min(kChainsChecked, dataset_->size()); ++i) {
    const auto stored = dataset_->tokens(i).to(torch::kInt64);
    const auto computed = torch::tensor(tokenizer.encode(dataset_->chain(i)), torch::kInt64);
    if (!torch::equal(stored, computed)) return false;
  }
  return true;
}

bool ExampleSource::dataset_reproduces(StructureEncoder& encoder) const {
  if (dataset_->embedding_dim() != encoder.output_dim()) return false;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < std::min(kChainsChecked, dataset_->size()); ++i) {
    const auto stored = dataset_->embeddings(i).to(torch::kFloat32);
    // Stored as float16: equal up to its rounding (relative 2^-11, and subnormal steps near zero).
    const auto computed = encoder.embed(dataset_->chain(i)).to(torch::kCPU).to(torch::kFloat16).to(torch::kFloat32);
    if (stored.sizes() != computed.sizes() || !torch::allclose(stored, computed, 1e-3, 1e-4)) return false;
  }
  return true;
}

ExampleSource::~ExampleSource() = default;

std::vector<size_t> ExampleSource::chains(const std::string& split) const {
  std::vector<size_t> out;
  if (!dataset_) {
    for (size_t i = 0; i < records_.size(); ++i)
      if (record_splits_[i] == split && static_cast<int64_t>(records_[i].sequence.size()) >= min_residues_) out.push_back(i);
    return out;
  }
  for (size_t i : dataset_->indices(split)) {
    const auto& meta = dataset_->metadata(i);
    if (high_quality_only_ && !meta.high_quality) continue;
    if (meta.length < min_residues_) continue;
    out.push_back(i);
  }
  return out;
}

int64_t ExampleSource::length(size_t chain) const {
  return dataset_ ? dataset_->metadata(chain).length : static_cast<int64_t>(records_[chain].sequence.size());
}

std::string ExampleSource::name() const { return dataset_ ? dataset_->path().string() : fasta_name_; }

TrainingExample ExampleSource::example(size_t chain) {
  TrainingExample ex;
  if (!dataset_) {
    ex.sequence = records_[chain].sequence;
    return ex;
  }
  const auto structure = dataset_->chain(chain);
  ex.sequence = structure.sequence;
  ex.observed = structure.observed;
  if (tokens_from_dataset_) {
    ex.tokens = dataset_->tokens(chain);
  } else if (tokenizer_) {
    auto it = token_cache_.find(chain);
    if (it == token_cache_.end())
      it = token_cache_.emplace(chain, torch::tensor(tokenizer_->encode(structure), torch::kInt64)).first;
    ex.tokens = it->second;
  }
  for (const auto& field : extra_fields_) {
    if (is_builtin_field(field)) {
      ex.fields[field] = compute_field(field, structure);
      continue;
    }
    // A plugin's provider may cost more than a copy: each chain's value is computed once and kept.
    auto& cached = field_cache_[field];
    auto it = cached.find(chain);
    if (it == cached.end()) it = cached.emplace(chain, compute_field(field, structure)).first;
    ex.fields[field] = it->second;
  }
  if (embeddings_from_dataset_) {
    ex.embeddings = dataset_->embeddings(chain);
  } else if (pgnn_) {
    auto it = embedding_cache_.find(chain);
    if (it == embedding_cache_.end()) {
      torch::NoGradGuard no_grad;
      it = embedding_cache_.emplace(chain, pgnn_->embed(structure).to(torch::kCPU, torch::kFloat16)).first;
    }
    ex.embeddings = it->second;
  }
  return ex;
}

std::string ExampleSource::describe() const {
  std::ostringstream os;
  if (!dataset_) return fasta_name_ + ": " + std::to_string(records_.size()) + " sequences (no structure inputs)";
  os << dataset_->path().string() << ": structure tokens "
     << (tokens_from_dataset_ ? "from the dataset (" + tokenizer_name_ + ")"
                              : tokenizer_ ? "computed by " + tokenizer_name_ : std::string("none"))
     << ", pGNN embeddings "
     << (embeddings_from_dataset_ ? "from the dataset (" + std::to_string(embedding_dim_) + "-d)"
                                  : pgnn_ ? "computed by " + pgnn_name_ + " (" + std::to_string(embedding_dim_) + "-d)"
                                          : std::string("none"));
  for (const auto& field : extra_fields_)
    if (!is_builtin_field(field)) os << ", " << field << " from the " << field_source(field);
  return os.str();
}

// ---------------------------------------------------------------- setup

TrainingSetup build_setup(const Recipe& recipe, const torch::Device& device) {
  recipe.validate();
  sapling::check_loss_fields(recipe);
  TrainingSetup setup;
  const auto train = recipe.settings("train");
  setup.device = device;
  // The commands' --dtype choice, with the same vocabulary: auto is bf16 where the device has bf16 matrix
  // units (CUDA; a CPU with AVX512-BF16 or AMX: within the 200-step budget of docs/performance.md).
  const auto precision = train.get_string("precision");
  if (precision == "bf16-pure") {
    setup.parameters = torch::kBFloat16;
  } else {
    setup.autocast = resolve_compute_dtype(precision, setup.device, "[train] precision");
  }

  const auto masking = recipe.settings("masking");
  setup.masking.probability = masking.get_float("probability");
  setup.masking.replace_with_mask = masking.get_float("replace_with_mask");
  setup.masking.replace_with_random = masking.get_float("replace_with_random");
  setup.masking.unknown_is_residue = recipe.settings("data").get_string("unknown_residues") == "include";
  if (setup.masking.replace_with_mask + setup.masking.replace_with_random > 1.0 + 1e-12)
    fail(masking.origin("replace_with_random"), ": [masking] replace_with_mask + replace_with_random exceeds 1");

  setup.normalization.mode =
      train.get_string("normalization") == "published" ? LossNormalization::PublishedConstant : LossNormalization::TokenMean;
  setup.normalization.mean_length = train.get_float("published_mean_length");
  const auto data = recipe.settings("data");
  if (data.get_string("batching") == "proteins") setup.normalization_proteins = data.get_int("proteins_per_batch");

  if (!recipe.has_section("model")) fail(recipe.path().string(), ": no [model] section (the pLM to train)");
  // Heads are initialised from the seed, so two runs of a recipe start equal.
  torch::manual_seed(static_cast<uint64_t>(train.get_int("seed")));
  setup.model = build_encoder(recipe, "model");
  // Float32 weights (bundled models may be float16), or bf16 in bf16-pure (the optimiser keeps float32 masters).
  setup.model->to(setup.device, setup.parameters);
  setup.model->train();

  {
    // Building a [pgnn] or [structure_tokens] component may draw random initial weights; the heads built next
    // must start the same whether the data source built one or found everything in the dataset.
    auto generator = at::detail::getDefaultCPUGenerator();
    const auto rng_state = generator.get_state();
    setup.data = std::make_unique<ExampleSource>(recipe, recipe.settings("data"), setup.device);
    generator.set_state(rng_state);
  }
  LossContext context;
  context.model_width = setup.model->hidden_size();
  context.structure_encoder_width = setup.data->embedding_dim();
  if (setup.data->has_tokens()) context.structure_vocabulary = setup.data->token_layout().vocabulary;
  setup.losses = build_losses(recipe, context);
  for (auto& head : setup.losses) head.loss->to(setup.device, setup.parameters);

  if (recipe.has_section("selector")) {
    auto [plugin, options] = recipe.component("selector");
    setup.selector_name = plugin;
    setup.selector = ResidueSelectorRegistry::instance().create(plugin, options);
    // A selector that keeps every residue: skip selection (and its kept-fraction metrics) altogether.
    if (setup.selector->keeps_everything()) setup.selector.reset();
    if (options.has("ratio")) setup.selection_ratio = options.get_float("ratio");
  }
  const bool needs_reference = setup.selector && setup.selector->needs_reference();
  if (needs_reference) {
    if (!recipe.has_section("reference_model"))
      fail(recipe.path().string(), ": [selector] component = \"", setup.selector_name,
           "\" needs a [reference_model] (a model folder from a reference training run)");
    setup.reference = build_encoder(recipe, "reference_model");
    setup.reference->to(setup.device, setup.parameters);
    setup.reference->eval();
    for (auto& p : setup.reference->parameters()) p.set_requires_grad(false);
    LossContext reference_context = context;
    reference_context.model_width = setup.reference->hidden_size();
    setup.reference_losses = build_losses(recipe, reference_context);
    const auto [ref_plugin, ref_options] = recipe.component("reference_model");
    if (!ref_options.has("path")) fail("[reference_model]: set 'path' to the reference run's model folder (it holds ", kHeadsFile, ")");
    load_heads(setup.reference_losses, ref_options.get_path("path") / kHeadsFile);
    for (auto& head : setup.reference_losses) {
      head.loss->to(setup.device, setup.parameters);
      head.loss->eval();
      for (auto& p : head.loss->parameters()) p.set_requires_grad(false);
    }
    if (setup.reference->tokenizer().vocab() != setup.model->tokenizer().vocab())
      fail("[reference_model]: its vocabulary differs from [model]'s; the reference must see the same masked batch");
  } else if (recipe.has_section("reference_model")) {
    info("[reference_model] is not loaded: the selector ", setup.selector ? "'" + setup.selector_name + "' " : "",
         "does not use a reference");
  }
  return setup;
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(const TrainingSetup& setup) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : setup.model->named_parameters())
    if (p.value().requires_grad()) out.emplace_back("model." + p.key(), p.value());
  for (const auto& head : setup.losses)
    for (const auto& p : head.loss->named_parameters())
      if (p.value().requires_grad()) out.emplace_back("heads." + head.name + "." + p.key(), p.value());
  return out;
}

NamedTensors head_tensors(const std::vector<LossHead>& losses) {
  NamedTensors out;
  for (const auto& head : losses)
    for (const auto& p : head.loss->named_parameters()) out.emplace_back(head.name + "." + p.key(), p.value().detach());
  return out;
}

void load_heads(std::vector<LossHead>& heads, const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    fail(file.string(), ": missing; a reference model folder must be a sapling training output (model + ", kHeadsFile, ")");
  SafetensorsFile stored(file);
  torch::NoGradGuard no_grad;
  for (auto& head : heads)
    for (const auto& p : head.loss->named_parameters()) {
      const auto key = head.name + "." + p.key();
      if (!stored.contains(key))
        fail(file.string(), ": has no '", key, "': the reference run had no [losses.", head.name,
             "] (or one of another shape). A selector that compares with the reference scores every loss of the "
             "recipe with the reference's own heads: train the reference with the same [losses] tables (add [losses.",
             head.name, "] to its recipe), or leave [losses.", head.name, "] out of this one");
      const auto value = stored.get(key);
      if (value.sizes() != p.value().sizes())
        fail(file.string(), ": '", key, "' has shape ", value.sizes(), ", the recipe's head needs ", p.value().sizes());
      p.value().copy_(value.to(torch::kFloat32));
    }
}

// ---------------------------------------------------------------- losses of one micro-batch

namespace {

struct ScoredHeads {
  EncoderOutput output;
  std::vector<LossTerms> terms;  // one per head
};

ScoredHeads score(SequenceEncoder& model, std::vector<LossHead>& heads, const LossInputs& base, const MicroBatch& batch,
                  const torch::Device& device) {
  ScoredHeads scored;
  ForwardRequest request;
  request.logits = true;
  if (batch.segments.defined()) request.segments = to_device(batch.segments, device);
  const auto ids = to_device(batch.ids, device);
  scored.output = model.forward(ids, to_device(batch.mask, device), request);
  LossInputs inputs = base;
  inputs.plm = &scored.output;
  for (auto& head : heads) {
    try {
      scored.terms.push_back(head.loss->compute(inputs));
    } catch (const Error& e) {
      std::string hint;
      if (!inputs.structure_tokens.defined())
        hint = " (the data has no structure tokens: prepare the dataset with --tokenizer, or add [structure_tokens])";
      else if (!inputs.pgnn_embeddings.defined())
        hint = " (the data has no pGNN embeddings: prepare with --pgnn NAME, or add [pgnn])";
      fail("[losses.", head.name, "]: ", e.what(), hint);
    }
  }
  return scored;
}

}  // namespace

MicroBatchLoss compute_losses(TrainingSetup& setup, const MicroBatch& batch, bool select, NamedTensors* trace) {
  const auto record = [&](const std::string& name, const torch::Tensor& value) {
    if (!trace || !value.defined()) return;
    auto stored = value.detach().to(torch::kCPU).contiguous();
    trace->emplace_back(name, stored.scalar_type() == torch::kBool ? stored.to(torch::kUInt8) : stored);
  };
  const auto& device = setup.device;
  LossInputs inputs;
  inputs.ids = to_device(batch.ids, device);
  inputs.residue_mask = to_device(batch.residue_mask, device);
  inputs.mlm_labels = to_device(batch.mlm_labels, device);
  inputs.segments = to_device(protein_segments(batch), device);
  if (batch.structure_tokens.defined()) inputs.structure_tokens = to_device(batch.structure_tokens, device);
  // The pGNN rows meet the heads' weights in a matrix product: in the parameters' dtype (bf16 in bf16-pure).
  if (batch.pgnn_embeddings.defined()) inputs.pgnn_embeddings = to_device(batch.pgnn_embeddings, device).to(setup.parameters);
  for (const auto& [name, values] : batch.fields) inputs.fields[name] = to_device(values, device);

  AutocastGuard autocast(device, setup.autocast);
  auto current = score(*setup.model, setup.losses, inputs, batch, device);
  std::optional<ScoredHeads> reference;
  if (setup.reference && select) {
    torch::NoGradGuard no_grad;
    reference = score(*setup.reference, setup.reference_losses, inputs, batch, device);
    ++setup.reference_passes;
  }
  if (trace) {  // float32 copies only when inspecting: under bf16 autocast they would cost a [B, T, V] copy per step
    record("model.logits", current.output.logits.to(torch::kFloat32));
    record("model.last_hidden", current.output.last_hidden.to(torch::kFloat32));
    if (reference) {
      record("reference.logits", reference->output.logits.to(torch::kFloat32));
      record("reference.last_hidden", reference->output.last_hidden.to(torch::kFloat32));
    }
  }

  MicroBatchLoss result;
  std::vector<WeightedLoss> weighted;
  for (size_t h = 0; h < setup.losses.size(); ++h) {
    const auto& head = setup.losses[h];
    const auto& terms = current.terms[h].per_residue;
    const bool selected = select && setup.selector && head.loss->selectable();
    for (const auto& [name, values] : terms) {
      WeightedLoss term;
      term.name = terms.size() == 1 ? head.name : head.name + "." + name;
      term.per_residue = values;
      // A loss with several terms (both contrastive directions) is their mean.
      term.weight = head.weight / static_cast<double>(terms.size());
      if (selected) {
        torch::Tensor reference_values;
        if (reference) reference_values = reference->terms[h].per_residue.at(name);
        term.keep = setup.selector->select(values, reference_values);
        term.ratio = setup.selection_ratio;
      } else {
        term.ratio = head.loss->scores_masked_residues() ? setup.masking.probability : 1.0;
      }
      if (selected) result.candidates[term.name] = values.size(0);
      record("terms." + term.name + ".loss", values);
      record("terms." + term.name + ".index", current.terms[h].index);
      record("terms." + term.name + ".keep", term.keep);
      if (reference && selected) record("terms." + term.name + ".reference_loss", reference->terms[h].per_residue.at(name));
      weighted.push_back(std::move(term));
    }
  }
  auto settings = setup.normalization;
  settings.batch_size = setup.normalization_proteins > 0 ? setup.normalization_proteins : batch.proteins;
  result.combined = combine_losses(weighted, settings);
  if (trace) {
    for (const auto& [name, value] : result.combined.terms) record("terms." + name + ".value", torch::tensor(value, torch::kFloat64));
    record("total", result.combined.total.to(torch::kFloat64));
  }
  return result;
}

}  // namespace sapling::training
