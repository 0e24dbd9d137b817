// Packed training micro-batches: a padded MicroBatch laid out in packed rows (see packing.hpp for the rows).
#include <limits>

#include "sapling/error.hpp"
#include "sapling/masking.hpp"
#include "sapling/packing.hpp"
#include "sapling/internal/training_batches.hpp"

namespace sapling {

MicroBatch pack_micro_batch(const MicroBatch& padded, int64_t row_tokens, int64_t pad_id) {
  if (padded.segments.defined()) fail("packing: the micro-batch is packed already");
  const int64_t P = padded.ids.size(0);
  const auto lengths_tensor = padded.mask.to(torch::kInt64).sum(1);
  std::vector<int64_t> lengths(lengths_tensor.data_ptr<int64_t>(), lengths_tensor.data_ptr<int64_t>() + P);
  const auto layout = lay_out_rows(lengths, row_tokens > 0 ? row_tokens : choose_row_tokens(lengths));
  const auto& placements = layout.placements;
  const int64_t rows = layout.rows, width = layout.width;

  MicroBatch out;
  out.ids = torch::full({rows, width}, pad_id, torch::kInt64);
  out.mask = torch::zeros({rows, width}, torch::kBool);
  out.residue_mask = torch::zeros({rows, width}, torch::kBool);
  out.mlm_labels = torch::full({rows, width}, kIgnoreLabel, torch::kInt64);
  out.segments = torch::full({rows, width}, int64_t{-1}, torch::kInt64);
  if (padded.structure_tokens.defined()) out.structure_tokens = torch::full({rows, width}, kIgnoreLabel, torch::kInt64);
  if (padded.pgnn_embeddings.defined())
    out.pgnn_embeddings = torch::zeros({rows, width, padded.pgnn_embeddings.size(2)}, padded.pgnn_embeddings.options());
  for (const auto& [name, values] : padded.fields) {
    auto shape = values.sizes().vec();
    shape[0] = rows;
    shape[1] = width;
    out.fields[name] = values.is_floating_point()
                           ? torch::full(shape, std::numeric_limits<float>::quiet_NaN(), values.options())
                           : torch::zeros(shape, values.options());
  }
  out.proteins = padded.proteins;
  out.residues = padded.residues;
  for (int64_t p = 0; p < P; ++p) {
    const auto& place = placements[static_cast<size_t>(p)];
    const int64_t n = lengths[static_cast<size_t>(p)];
    const auto copy = [&](torch::Tensor& to, const torch::Tensor& from) {
      to[place.row].slice(0, place.offset, place.offset + n).copy_(from[p].slice(0, 0, n));
    };
    // Padded rows hold each protein from token 0 (BOS) with the pad after it.
    copy(out.ids, padded.ids);
    copy(out.mask, padded.mask);
    copy(out.residue_mask, padded.residue_mask);
    copy(out.mlm_labels, padded.mlm_labels);
    if (out.structure_tokens.defined()) copy(out.structure_tokens, padded.structure_tokens);
    if (out.pgnn_embeddings.defined()) copy(out.pgnn_embeddings, padded.pgnn_embeddings);
    for (auto& [name, values] : out.fields) copy(values, padded.fields.at(name));
    out.segments[place.row].slice(0, place.offset, place.offset + n).fill_(p);
  }
  return out;
}

}  // namespace sapling
