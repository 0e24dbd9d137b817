// The ids a structure-token head predicts: a tokenizer's states inside a vocabulary with special ids.
#pragma once
#include <cstdint>

namespace sapling {

// The tokenizer owning the states describes it (StructureTokenizer::vocabulary()); the trainer writes state k
// as target state_id(k) and gives the vocabulary to the losses (LossContext), so the core hard-codes no
// layout. The usual one is the pLM-style (ESM) layout of esm_like(), S + 6 ids (20 states: 26) in which
// BOS/EOS/pad/mask have familiar ids:
//    0 <cls>   1 <pad>   2 <eos>   3 <unk>   4 .. 4+S-1 the S states   4+S <null_1> (unused)   4+S+1 <mask>
struct StructureVocabulary {
  int64_t num_states = 0;   // S; 0 with num_classes 0: no structure tokens
  int64_t num_classes = 0;  // ids in all: the head's output size
  int64_t first_state = 0;  // id of state 0; state k has id first_state + k
  int64_t cls = -1, pad = -1, eos = -1, unk = -1, mask = -1;  // special ids (-1: the layout has none)

  int64_t state_id(int64_t state) const { return first_state + state; }
  bool empty() const { return num_classes == 0; }
  static StructureVocabulary esm_like(int64_t num_states) {
    StructureVocabulary v;
    v.num_states = num_states;
    v.num_classes = num_states + 6;
    v.cls = 0;
    v.pad = 1;
    v.eos = 2;
    v.unk = 3;
    v.first_state = 4;
    v.mask = 4 + num_states + 1;  // after <null_1>
    return v;
  }
};

}  // namespace sapling
