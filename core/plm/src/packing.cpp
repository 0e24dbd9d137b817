// Sequence packing (see packing.hpp): row assignment, packed token rows and the per-protein position and mask helpers.
#include "sapling/packing.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "sapling/error.hpp"

namespace sapling {

std::vector<PackedPlacement> pack_rows(const std::vector<int64_t>& token_lengths, int64_t row_tokens) {
  if (row_tokens < 1) fail("packing: the row length must be positive, got ", row_tokens);
  std::vector<size_t> order(token_lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return token_lengths[a] > token_lengths[b]; });
  std::vector<int64_t> used;                 // tokens per row
  std::vector<PackedPlacement> placements(token_lengths.size());
  for (size_t item : order) {
    const int64_t n = token_lengths[item];
    if (n < 1) fail("packing: item ", item, " has ", n, " tokens");
    size_t row = 0;
    while (row < used.size() && used[row] + n > row_tokens) ++row;
    if (row == used.size()) used.push_back(0);
    placements[item].row = static_cast<int64_t>(row);
    used[row] += n;
  }
  // Offsets in input order within each row.
  std::vector<int64_t> next(used.size(), 0);
  for (size_t item = 0; item < token_lengths.size(); ++item) {
    auto& p = placements[item];
    p.offset = next[static_cast<size_t>(p.row)];
    next[static_cast<size_t>(p.row)] += token_lengths[item];
  }
  return placements;
}

PackedLayout lay_out_rows(const std::vector<int64_t>& token_lengths, int64_t row_tokens) {
  PackedLayout layout;
  layout.placements = pack_rows(token_lengths, row_tokens);
  for (size_t i = 0; i < layout.placements.size(); ++i) {
    layout.rows = std::max(layout.rows, layout.placements[i].row + 1);
    layout.width = std::max(layout.width, layout.placements[i].offset + token_lengths[i]);
  }
  return layout;
}

int64_t choose_row_tokens(const std::vector<int64_t>& token_lengths) {
  if (token_lengths.empty()) return 1;
  const int64_t longest = *std::max_element(token_lengths.begin(), token_lengths.end());
  const int64_t total = std::accumulate(token_lengths.begin(), token_lengths.end(), int64_t{0});
  const int64_t rows = std::max<int64_t>(1, total / longest);
  int64_t best = longest, best_cost = -1;
  for (int64_t candidate : {longest, (total + rows - 1) / rows, (total + rows) / (rows + 1)}) {
    candidate = std::max(candidate, longest);
    const auto layout = lay_out_rows(token_lengths, candidate);
    const int64_t cost = layout.rows * layout.width;
    if (best_cost < 0 || cost < best_cost) best = candidate, best_cost = cost;
  }
  return best;
}

PackedTokens pack_tokens(const std::vector<std::vector<int64_t>>& encoded, int64_t row_tokens, int64_t pad_id) {
  if (encoded.empty()) fail("packing: nothing to pack");
  std::vector<int64_t> lengths;
  for (const auto& e : encoded) lengths.push_back(static_cast<int64_t>(e.size()));
  auto layout = lay_out_rows(lengths, row_tokens > 0 ? row_tokens : choose_row_tokens(lengths));
  const int64_t rows = layout.rows, width = layout.width;
  PackedTokens out;
  out.placements = std::move(layout.placements);
  out.ids = torch::full({rows, width}, pad_id, torch::kInt64);
  out.segments = torch::full({rows, width}, int64_t{-1}, torch::kInt64);
  auto ids = out.ids.accessor<int64_t, 2>();
  auto segments = out.segments.accessor<int64_t, 2>();
  for (size_t i = 0; i < encoded.size(); ++i) {
    const auto& p = out.placements[i];
    for (size_t t = 0; t < encoded[i].size(); ++t) {
      ids[p.row][p.offset + static_cast<int64_t>(t)] = encoded[i][t];
      segments[p.row][p.offset + static_cast<int64_t>(t)] = static_cast<int64_t>(i);
    }
  }
  out.mask = out.segments.ge(0);
  return out;
}

namespace {

// [B, T] int64: the index of the first token of each token's run of equal segment ids.
torch::Tensor run_starts(const torch::Tensor& segments) {
  const int64_t T = segments.size(1);
  auto index = torch::arange(T, segments.options().dtype(torch::kInt64)).expand_as(segments);
  auto starts = torch::ones_like(segments, torch::kBool);
  if (T > 1) starts.slice(1, 1, T).copy_(segments.slice(1, 1, T).ne(segments.slice(1, 0, T - 1)));
  return std::get<0>(torch::cummax(torch::where(starts, index, torch::zeros_like(index)), 1));
}

void require_segments(const torch::Tensor& segments, const char* who = "packing") {
  if (!segments.defined() || segments.dim() != 2 || segments.scalar_type() != torch::kInt64)
    fail(who, ": packed segments must be an int64 tensor [B, T], got ",
         segments.defined() ? c10::toString(segments.scalar_type()) : "undefined", " ",
         segments.defined() ? segments.sizes() : torch::IntArrayRef{});
}

}  // namespace

void check_packed_request(const ForwardRequest& request, const torch::Tensor& ids, const char* family) {
  const auto& segments = request.segments;
  require_segments(segments, family);
  if (segments.sizes() != ids.sizes())
    fail(family, ": packed segments of shape ", segments.sizes(), " for ids of shape ", ids.sizes());
  if (request.attentions)
    fail(family, ": attention maps (contacts) need one protein per row: do not pack when asking for them");
}

torch::Tensor packed_positions(const torch::Tensor& segments) {
  require_segments(segments);
  const int64_t T = segments.size(1);
  auto index = torch::arange(T, segments.options().dtype(torch::kInt64)).expand_as(segments);
  return (index - run_starts(segments)).masked_fill(segments.lt(0), 0);
}

torch::Tensor gather_positions(const torch::Tensor& table, const torch::Tensor& positions) {
  return table.index_select(0, positions.flatten()).view({positions.size(0), 1, positions.size(1), table.size(1)});
}

torch::Tensor packed_attention_mask(const torch::Tensor& segments) {
  require_segments(segments);
  return segments.unsqueeze(2).eq(segments.unsqueeze(1)).unsqueeze(1);
}

torch::Tensor segment_sum(const torch::Tensor& values, const torch::Tensor& segments) {
  require_segments(segments);
  if (values.sizes() != segments.sizes()) fail("packing: segment_sum of ", values.sizes(), " over segments ", segments.sizes());
  const int64_t B = segments.size(0), T = segments.size(1);
  // One bucket per (row, run start): a protein's tokens are one run.
  const auto rows = torch::arange(B, segments.options().dtype(torch::kInt64)).unsqueeze(1) * T;
  const auto key = (rows + run_starts(segments)).flatten();
  auto sums = torch::zeros({B * T}, values.options()).index_add_(0, key, values.flatten());
  return sums.index_select(0, key).view({B, T});
}

}  // namespace sapling
