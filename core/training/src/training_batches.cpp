// Epoch plans and micro-batch collation for the trainer (see training_batches.hpp).
#include "sapling/internal/training_batches.hpp"

#include <algorithm>
#include <limits>

#include "sapling/error.hpp"

namespace sapling {

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  auto splitmix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  return splitmix(splitmix(splitmix(seed) ^ a) ^ b);
}

namespace {

// A permutation of 0..n-1 from torch's CPU generator (the same on every platform, unlike std::shuffle).
std::vector<int64_t> permutation(int64_t n, torch::Generator& generator) {
  if (n == 0) return {};
  const auto perm = torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kInt64));
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
}

}  // namespace

Batching parse_batching(const std::string& name) {
  if (name == "proteins") return Batching::Proteins;
  if (name == "tokens") return Batching::Tokens;
  if (name == "packed") return Batching::Packed;
  fail("batching '", name, "': expected \"tokens\", \"proteins\" or \"packed\"");
}

std::vector<std::vector<size_t>> plan_epoch(const std::vector<int64_t>& lengths, const BatchPlanSettings& settings,
                                            uint64_t seed, int64_t epoch) {
  if (settings.proteins_per_batch < 1 || settings.tokens_per_batch < 1 || settings.sort_window < 1)
    fail("batch plan: proteins_per_batch, tokens_per_batch and sort_window must be positive");
  auto generator = make_generator(mix_seed(seed, static_cast<uint64_t>(epoch), 0x5eed));
  const auto order = permutation(static_cast<int64_t>(lengths.size()), generator);
  std::vector<std::vector<size_t>> batches;
  if (settings.mode == Batching::Packed) {
    std::vector<size_t> current;
    int64_t tokens = 0;
    for (int64_t i : order) {
      const auto index = static_cast<size_t>(i);
      const int64_t size = lengths[index] + settings.extra_tokens;
      const bool fits = static_cast<int64_t>(current.size()) < settings.proteins_per_batch &&
                        tokens + size <= settings.tokens_per_batch;
      if (!current.empty() && !fits) {
        batches.push_back(std::move(current));
        current.clear();
        tokens = 0;
      }
      current.push_back(index);
      tokens += size;
    }
    if (!current.empty()) batches.push_back(std::move(current));
    return batches;  // already in shuffled order
  }
  if (settings.mode == Batching::Proteins) {
    for (size_t start = 0; start < order.size(); start += static_cast<size_t>(settings.proteins_per_batch)) {
      const size_t end = std::min(order.size(), start + static_cast<size_t>(settings.proteins_per_batch));
      batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start), order.begin() + static_cast<std::ptrdiff_t>(end));
    }
    return batches;
  }
  const size_t window = static_cast<size_t>(settings.sort_window * settings.proteins_per_batch);
  for (size_t start = 0; start < order.size(); start += window) {
    std::vector<size_t> chunk(order.begin() + static_cast<std::ptrdiff_t>(start),
                              order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window)));
    // Longest first, so each micro-batch's first protein sets its padded width.
    std::stable_sort(chunk.begin(), chunk.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    std::vector<size_t> current;
    int64_t width = 0;
    for (size_t index : chunk) {
      const int64_t tokens = lengths[index] + settings.extra_tokens;
      const int64_t new_width = std::max(width, tokens);
      const bool fits = static_cast<int64_t>(current.size()) < settings.proteins_per_batch &&
                        new_width * static_cast<int64_t>(current.size() + 1) <= settings.tokens_per_batch;
      if (!current.empty() && !fits) {
        batches.push_back(std::move(current));
        current.clear();
        width = 0;
      }
      current.push_back(index);
      width = std::max(width, tokens);
    }
    if (!current.empty()) batches.push_back(std::move(current));
  }
  const auto batch_order = permutation(static_cast<int64_t>(batches.size()), generator);
  std::vector<std::vector<size_t>> shuffled;
  shuffled.reserve(batches.size());
  for (int64_t b : batch_order) shuffled.push_back(std::move(batches[static_cast<size_t>(b)]));
  return shuffled;
}

torch::Tensor protein_segments(const MicroBatch& batch) {
  if (batch.segments.defined()) return batch.segments;
  const int64_t rows = batch.ids.size(0), width = batch.ids.size(1);
  const auto row = torch::arange(rows, torch::kInt64).unsqueeze(1).expand({rows, width});
  return torch::where(batch.mask.to(torch::kBool), row, torch::full_like(row, -1));
}

MicroBatch collate(const std::vector<TrainingExample>& examples, const Tokenizer& tokenizer, int64_t max_length,
                   const MaskingOptions& masking, const StructureTokenLayout& layout, torch::Generator& generator) {
  if (examples.empty()) fail("collate: empty micro-batch");
  if (max_length < 1) fail("collate: max_length must be positive");
  const bool with_tokens = examples.front().tokens.defined();
  const bool with_embeddings = examples.front().embeddings.defined();
  const int64_t dim = with_embeddings ? examples.front().embeddings.size(1) : 0;

  // Crop windows first (one draw per long protein, in batch order), then tokenise.
  std::vector<std::pair<int64_t, int64_t>> windows;  // [start, length)
  std::vector<std::vector<int64_t>> encoded;
  for (const auto& example : examples) {
    if (example.tokens.defined() != with_tokens || example.embeddings.defined() != with_embeddings ||
        example.fields.size() != examples.front().fields.size())
      fail("collate: every protein of a micro-batch needs the same per-residue inputs");
    const int64_t length = static_cast<int64_t>(example.sequence.size());
    int64_t start = 0, kept = length;
    if (length > max_length) {
      start = torch::randint(length - max_length + 1, {1}, generator, torch::TensorOptions().dtype(torch::kInt64))
                  .item<int64_t>();
      kept = max_length;
    }
    windows.emplace_back(start, kept);
    encoded.push_back(tokenizer.encode(std::string_view(example.sequence).substr(static_cast<size_t>(start),
                                                                                   static_cast<size_t>(kept))));
    if (static_cast<int64_t>(encoded.back().size()) != kept + 2)
      fail("collate: the tokenizer made ", encoded.back().size(), " tokens of ", kept,
           " residues; training expects one token per residue plus BOS and EOS");
  }
  const auto padded = tokenizer.pad(encoded);
  MicroBatch batch;
  batch.mask = padded.mask;
  batch.residue_mask = real_residue_mask(padded.ids, padded.mask, tokenizer, masking.unknown_is_residue);
  const auto masked = mask_tokens(padded.ids, batch.residue_mask, tokenizer, masking, generator);
  batch.ids = masked.ids;
  batch.mlm_labels = masked.labels;
  batch.proteins = static_cast<int64_t>(examples.size());

  const int64_t B = padded.ids.size(0), T = padded.ids.size(1);
  if (with_tokens) batch.structure_tokens = torch::full({B, T}, kIgnoreLabel, torch::kInt64);
  if (with_embeddings) batch.pgnn_embeddings = torch::zeros({B, T, dim}, torch::kFloat32);
  for (const auto& [name, values] : examples.front().fields) {
    std::vector<int64_t> shape = {B, T};
    for (int64_t d = 1; d < values.dim(); ++d) shape.push_back(values.size(d));
    const bool floating = values.is_floating_point();
    batch.fields[name] = floating ? torch::full(shape, std::numeric_limits<float>::quiet_NaN(), values.options())
                                  : torch::zeros(shape, values.options());
  }
  for (int64_t b = 0; b < B; ++b) {
    const auto& example = examples[static_cast<size_t>(b)];
    const auto [start, kept] = windows[static_cast<size_t>(b)];
    batch.residues += kept;
    // Residue k of the window sits at token position k + 1 (after BOS).
    if (with_tokens) {
      auto states = example.tokens.slice(0, start, start + kept).to(torch::kInt64);
      const int64_t num_states = layout.vocabulary.num_states;
      const auto known = states.ge(0).logical_and(states.lt(num_states));
      if (known.logical_not().logical_and(states.ne(layout.mask_state)).any().item<bool>())
        fail("collate: a structure token is neither a state 0..", num_states - 1, " nor the mask state ",
             layout.mask_state);
      auto scored = known;
      if (example.observed.defined()) {
        if (example.observed.dim() != 1 || example.observed.size(0) != static_cast<int64_t>(example.sequence.size()))
          fail("collate: an observed mask of shape ", example.observed.sizes(), " for a protein of ",
               example.sequence.size(), " residues");
        scored = known.logical_and(example.observed.slice(0, start, start + kept).to(torch::kBool));
      }
      const auto ids = torch::where(scored, states + layout.vocabulary.state_id(0), torch::full_like(states, kIgnoreLabel));
      batch.structure_tokens[b].slice(0, 1, 1 + kept).copy_(ids);
    }
    if (with_embeddings) {
      const auto& rows = example.embeddings;
      if (rows.dim() != 2 || rows.size(1) != dim || rows.size(0) != static_cast<int64_t>(example.sequence.size()))
        fail("collate: pGNN embeddings of shape ", rows.sizes(), " for a protein of ", example.sequence.size(),
             " residues (expected [L, ", dim, "])");
      batch.pgnn_embeddings[b].slice(0, 1, 1 + kept).copy_(rows.slice(0, start, start + kept).to(torch::kFloat32));
    }
    for (auto& [name, out] : batch.fields) {
      auto it = example.fields.find(name);
      if (it == example.fields.end()) fail("collate: a protein of the micro-batch lacks the field '", name, "'");
      const auto& values = it->second;
      if (values.dim() != out.dim() - 1 || values.size(0) != static_cast<int64_t>(example.sequence.size()) ||
          values.sizes().slice(1) != out.sizes().slice(2))
        fail("collate: field '", name, "' of shape ", values.sizes(), " for a protein of ", example.sequence.size(),
             " residues (expected [L", out.dim() > 2 ? ", ..." : "", "] like the other proteins)");
      out[b].slice(0, 1, 1 + kept).copy_(values.slice(0, start, start + kept));
    }
  }
  return batch;
}

}  // namespace sapling
