// embed_sequences: length-sorted token batching, layer selection, pooling, contacts, long-sequence policy.
#include "sapling/internal/embed.hpp"

#include "sapling/autocast.hpp"
#include "sapling/compute_dtype.hpp"

#include <algorithm>
#include <numeric>

#include "sapling/error.hpp"
#include "sapling/log.hpp"
#include "sapling/packing.hpp"
#include "sapling/progress.hpp"

namespace sapling {

std::vector<std::vector<size_t>> token_batches(const std::vector<int64_t>& lengths, int64_t tokens_per_batch,
                                               int64_t extra_tokens_per_sequence, bool packed) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  std::vector<size_t> current;
  int64_t longest = 0, sum = 0;
  for (size_t i : order) {
    const int64_t size = lengths[i] + extra_tokens_per_sequence;
    const int64_t cost = packed ? sum + size : std::max(longest, size) * static_cast<int64_t>(current.size() + 1);
    if (!current.empty() && cost > tokens_per_batch) {
      batches.push_back(std::move(current));
      current.clear();
      longest = sum = 0;
    }
    current.push_back(i);
    longest = std::max(longest, size);
    sum += size;
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

namespace {

// One unit of model input: a whole sequence or one window of a long one.
struct Piece {
  size_t record;
  int64_t start, length;  // residue range in the record's sequence
};

// Residue-level (not token-level) length of a sequence: "<mask>" counts once.
std::vector<std::string> split_residues(const std::string& seq) {
  std::vector<std::string> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    if (seq[i] == '<') {
      const size_t close = seq.find('>', i);
      if (close != std::string::npos) {
        out.push_back(seq.substr(i, close - i + 1));
        i = close;
        continue;
      }
    }
    out.emplace_back(1, seq[i]);
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, int64_t start, int64_t length) {
  std::string s;
  for (int64_t i = start; i < start + length; ++i) s += parts[static_cast<size_t>(i)];
  return s;
}

struct Accumulator {
  std::vector<torch::Tensor> per_layer;  // [L, D] sums
  torch::Tensor coverage;                // [L] window counts
  torch::Tensor contacts, contact_cover; // [L, L]
  std::vector<torch::Tensor> bos;        // first window's BOS per layer
};

}  // namespace

EmbedResult embed_sequences(SequenceEncoder& model, const std::vector<FastaRecord>& records,
                            const EmbedOptions& options) {
  torch::NoGradGuard no_grad;
  model.eval();
  // Default limit: the length the model was pretrained on (ESM2: 1022 residues, as fair-esm's esm-extract).
  const int64_t limit = options.truncation > 0 ? options.truncation : model.pretrained_tokens() - 2;
  if (limit > model.max_tokens() - 2)
    fail("--truncation ", limit, " exceeds the model's limit of ", model.max_tokens() - 2, " residues");
  const auto want = [&](const std::string& what) {
    return std::find(options.include.begin(), options.include.end(), what) != options.include.end();
  };
  for (const auto& inc : options.include)
    if (inc != "per_tok" && inc != "mean" && inc != "bos" && inc != "contacts")
      fail("--include: unknown output '", inc, "' (expected per_tok, mean, bos or contacts)");
  const bool contacts = want("contacts");
  const int64_t L = model.num_layers();
  std::vector<int64_t> layers;
  for (int64_t layer : options.layers) {
    const int64_t resolved = layer < 0 ? L + 1 + layer : layer;
    if (resolved < 0 || resolved > L) fail("--repr-layers: layer ", layer, " is out of range for a ", L, "-layer model");
    layers.push_back(resolved);
  }
  const bool need_hidden = std::any_of(layers.begin(), layers.end(), [&](int64_t l) { return l != L; });

  // Split records into pieces according to the long-sequence policy.
  std::vector<std::vector<std::string>> residues(records.size());
  std::vector<Piece> pieces;
  EmbedResult result;
  result.limit = limit;
  const int64_t overlap = options.window_overlap >= 0 ? options.window_overlap : limit / 2;
  if (options.policy == LongSequencePolicy::Window && overlap >= limit)
    fail("--window-overlap ", overlap, " must be smaller than the window (", limit, " residues)");
  for (size_t r = 0; r < records.size(); ++r) {
    residues[r] = split_residues(records[r].sequence);
    const auto n = static_cast<int64_t>(residues[r].size());
    if (n <= limit) {
      pieces.push_back({r, 0, n});
      continue;
    }
    ++result.truncated;
    switch (options.policy) {
      case LongSequencePolicy::Error:
        fail("sequence '", records[r].label, "' (line ", records[r].line, ") has ", n, " residues, over the limit of ",
             limit);
      case LongSequencePolicy::Truncate:
        warn("sequence '", records[r].label, "' has ", n, " residues; truncated to the first ", limit,
             " (use --long window for sliding windows)");
        pieces.push_back({r, 0, limit});
        break;
      case LongSequencePolicy::Window: {
        const int64_t stride = limit - overlap;
        for (int64_t s = 0;; s += stride) {
          const int64_t start = std::min(s, n - limit);
          pieces.push_back({r, start, limit});
          if (start + limit >= n) break;
        }
        break;
      }
    }
  }

  std::vector<Accumulator> acc(records.size());
  std::vector<int64_t> piece_lengths;
  for (const auto& p : pieces) piece_lengths.push_back(p.length);
  if (options.packed && contacts)
    fail("--pack: contacts need one sequence per row (their attention maps); leave out contacts or --pack");
  if (options.packed && !model.supports_packing())
    fail("--pack: the ", model.family(), " encoder does not support packed rows");
  const auto batches = token_batches(piece_lengths, options.tokens_per_batch, 2, options.packed);
  int64_t total_residues = 0;
  for (const auto& p : pieces) total_residues += p.length;
  ProgressBar progress("embed", static_cast<double>(total_residues), "res/s");

  if (!options.device.is_cuda() && options.dtype == torch::kFloat16)
    fail("--dtype fp16 needs --device cuda; on the CPU use bf16");
  // Weights stay float32; bf16/fp16 come from autocast, as torch.autocast does it
  // (casting the weights would also round rotary angles and norms).
  model.to(options.device, torch::kFloat32);
  AutocastGuard autocast(options.device, options.dtype);

  const auto& tokenizer = model.tokenizer();
  for (const auto& batch : batches) {
    std::vector<std::vector<int64_t>> encoded;
    int64_t batch_residues = 0;
    for (size_t i : batch) {
      const auto& p = pieces[i];
      encoded.push_back(tokenizer.encode(join(residues[p.record], p.start, p.length)));
      batch_residues += p.length;
    }
    ForwardRequest request;
    request.hidden_states = need_hidden;
    request.attentions = contacts;
    request.logits = false;
    // Where piece b's BOS sits: row b, token 0 padded; its packed placement otherwise.
    std::vector<PackedPlacement> places;
    torch::Tensor ids, mask;
    if (options.packed) {
      auto packed = pack_tokens(encoded, 0, tokenizer.pad_id());
      ids = to_device(packed.ids, options.device);
      mask = to_device(packed.mask, options.device);
      request.segments = to_device(packed.segments, options.device);
      places = std::move(packed.placements);
    } else {
      auto tokens = tokenizer.pad(encoded);
      ids = to_device(tokens.ids, options.device);
      mask = to_device(tokens.mask, options.device);
      for (size_t b = 0; b < batch.size(); ++b) places.push_back({static_cast<int64_t>(b), 0});
    }
    auto out = model.forward(ids, mask, request);
    std::vector<torch::Tensor> reps;
    for (int64_t layer : layers)
      reps.push_back((layer == L ? out.last_hidden : model.representation(out, layer)).to(torch::kCPU, torch::kFloat32));
    torch::Tensor contact_maps;
    if (contacts) contact_maps = model.contacts(out, ids, mask).to(torch::kCPU, torch::kFloat32);

    for (size_t b = 0; b < batch.size(); ++b) {
      const auto& p = pieces[batch[b]];
      auto& a = acc[p.record];
      const auto n = static_cast<int64_t>(std::min<size_t>(residues[p.record].size(),
                                                           options.policy == LongSequencePolicy::Window
                                                               ? residues[p.record].size()
                                                               : static_cast<size_t>(limit)));
      if (a.per_layer.empty()) {
        for (const auto& rep : reps) a.per_layer.push_back(torch::zeros({n, rep.size(-1)}));
        a.coverage = torch::zeros({n});
        if (contacts) a.contacts = torch::zeros({n, n}), a.contact_cover = torch::zeros({n, n});
        for (const auto& rep : reps) a.bos.push_back(rep[places[b].row][places[b].offset].clone());
      }
      const auto rows = torch::indexing::Slice(p.start, p.start + p.length);
      const int64_t first = places[b].offset + 1;  // the piece's first residue token
      for (size_t k = 0; k < reps.size(); ++k)
        a.per_layer[k].index({rows}) += reps[k][places[b].row].slice(0, first, first + p.length);
      a.coverage.index({rows}) += 1;
      if (contacts) {
        a.contacts.index({rows, rows}) += contact_maps[static_cast<int64_t>(b)].slice(0, 0, p.length).slice(1, 0, p.length);
        a.contact_cover.index({rows, rows}) += 1;
      }
    }
    result.residues += batch_residues;
    result.tokens += ids.numel();
    progress.advance(static_cast<double>(batch_residues));
  }
  progress.finish();
  result.seconds = progress.elapsed_seconds();

  const bool suffix = layers.size() > 1;
  for (size_t r = 0; r < records.size(); ++r) {
    auto& a = acc[r];
    const std::string& label = records[r].label;
    for (size_t k = 0; k < layers.size(); ++k) {
      const std::string s = suffix ? "@" + std::to_string(layers[k]) : "";
      auto per_tok = a.per_layer[k] / a.coverage.unsqueeze(1);  // averages window overlaps
      if (want("per_tok")) result.tensors.emplace_back(label + "/per_tok" + s, per_tok);
      if (want("mean")) result.tensors.emplace_back(label + "/mean" + s, per_tok.mean(0));
      if (want("bos")) result.tensors.emplace_back(label + "/bos" + s, a.bos[k]);
    }
    // Pairs never inside one window have no prediction: they are written as 0.
    if (contacts) result.tensors.emplace_back(label + "/contacts", a.contacts / a.contact_cover.clamp_min(1));
  }
  model.to(torch::kCPU, torch::kFloat32);
  return result;
}

}  // namespace sapling
