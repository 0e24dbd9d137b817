// The structure-token vocabulary the structure-token loss predicts: 20 3Di states inside a pLM-style (ESM) vocabulary.
#pragma once
#include <cstdint>

namespace sapling::structure_vocab {

// 26 ids, laid out like the ESM vocabulary so BOS/EOS/pad/mask have familiar ids:
//    0 <cls>   1 <pad>   2 <eos>   3 <unk>
//    4..23     the 20 structure states, id = state + 4 (3Di letters ACDEFGHIKLMNPQRSTVWY in state order)
//   24 <null_1> (unused; keeps ESM's layout)   25 <mask>
// The structure-token loss scores real residues only, so <cls>/<eos>/<pad> never
// count; its `ignore_ids` option additionally drops targets equal to listed ids
// (by default <cls>, <pad>, <eos>, the published "BOS/EOS ids ignored").
// Tokenizers with more states (VQ codes, 512 or 4096) use the same layout with
// num_classes = num_states + 6 and the trailing ids shifted accordingly.
constexpr int64_t kCls = 0;
constexpr int64_t kPad = 1;
constexpr int64_t kEos = 2;
constexpr int64_t kUnk = 3;
constexpr int64_t kFirstState = 4;
constexpr int64_t kNumSpecials = 6;

constexpr int64_t num_classes(int64_t num_states) { return num_states + kNumSpecials; }
constexpr int64_t state_id(int64_t state) { return kFirstState + state; }
constexpr int64_t null_id(int64_t num_states) { return kFirstState + num_states; }
constexpr int64_t mask_id(int64_t num_states) { return kFirstState + num_states + 1; }

// 3Di: 20 states, 26 ids.
constexpr int64_t kThreeDiStates = 20;
static_assert(num_classes(kThreeDiStates) == 26, "3Di vocabulary has 26 ids");

}  // namespace sapling::structure_vocab
