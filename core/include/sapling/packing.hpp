// Sequence packing: several proteins end to end in one row, each with its own BOS/EOS, positions and attention block.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/tokenizer.hpp"
#include "sapling/internal/training_batches.hpp"

namespace sapling {

// Where an item (a tokenised protein) sits in a packed batch.
struct PackedPlacement {
  int64_t row = 0, offset = 0;  // its BOS is token `offset` of row `row`
};

// Rows of at most `row_tokens` tokens, filled first-fit in decreasing length
// (an item longer than a row gets a row of its own). Within a row, items keep
// their input order, so a row reads like the padded batch with the pad removed.
SAPLING_API std::vector<PackedPlacement> pack_rows(const std::vector<int64_t>& token_lengths, int64_t row_tokens);

// The row length that packs `token_lengths` into the fewest padded tokens
// (rows x widest row), among the longest item and the even splits of the
// total into as many rows as that allows or one more: a row is never much
// longer than the longest item, so attention across items stays bounded.
SAPLING_API int64_t choose_row_tokens(const std::vector<int64_t>& token_lengths);

struct PackedTokens {
  torch::Tensor ids;       // [R, W] int64, pad after the last item of a row
  torch::Tensor mask;      // [R, W] bool, true at non-pad tokens
  torch::Tensor segments;  // [R, W] int64, the item index at each token, -1 at pad
  std::vector<PackedPlacement> placements;  // one per item
};

// Tokenised items (specials included) laid out by pack_rows (row_tokens 0: choose_row_tokens).
SAPLING_API PackedTokens pack_tokens(const std::vector<std::vector<int64_t>>& encoded, int64_t row_tokens,
                                     int64_t pad_id);

// The same micro-batch with its proteins packed into rows of `row_tokens`
// (0: choose_row_tokens):
// the same ids, masks, labels and targets of every protein (masking drawn
// once, on the padded layout), so losses and selection see the same residues.
SAPLING_API MicroBatch pack_micro_batch(const MicroBatch& padded, int64_t row_tokens, int64_t pad_id);

// Helpers for encoders that honour ForwardRequest::segments:
// fails unless request.segments is int64 of the ids' shape [B, T] and no
// attention maps are requested (a packed row's maps mix proteins).
SAPLING_API void check_packed_request(const ForwardRequest& request, const torch::Tensor& ids, const char* family);
// [B, T] int64 positions restarting at 0 at each protein's first token (0 at pad).
SAPLING_API torch::Tensor packed_positions(const torch::Tensor& segments);
// Rows of a per-position table [P, D] (rotary cos/sin) at positions [B, T]: [B, 1, T, D], broadcasting over heads.
SAPLING_API torch::Tensor gather_positions(const torch::Tensor& table, const torch::Tensor& positions);
// [B, 1, T, T] bool: query and key in the same protein (pad attends to pad only,
// so no row of the softmax is empty).
SAPLING_API torch::Tensor packed_attention_mask(const torch::Tensor& segments);
// values [B, T] summed over each token's protein, broadcast back to [B, T].
SAPLING_API torch::Tensor segment_sum(const torch::Tensor& values, const torch::Tensor& segments);

}  // namespace sapling
