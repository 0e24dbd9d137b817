// In-memory protein chain structure: sequence, backbone coordinates, mask, B-factors, entry metadata.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sapling/error.hpp"

namespace sapling {

// Backbone atom slots in ChainStructure::coords.
enum BackboneAtom : int64_t { kN = 0, kCA = 1, kC = 2, kO = 3, kCB = 4, kNumBackboneAtoms = 5 };

// One protein chain as the structure side uses it. Residues follow the full
// sequence (SEQRES-aligned when available); missing atoms are NaN, residues
// without CA have observed == false.
struct ChainStructure {
  std::string entry;     // file stem or PDB id
  std::string chain;     // author chain name
  std::string sequence;  // one-letter codes, X for unknown
  torch::Tensor coords;  // [L, 5, 3] float32: N, CA, C, O, CB (NaN where missing)
  torch::Tensor observed;  // [L] bool: residue has a CA atom
  torch::Tensor bfactor;   // [L] float32: CA B-factor (or pLDDT for predicted models); NaN if absent
  std::string method;      // "X-RAY DIFFRACTION", "SOLUTION NMR", "PREDICTED", "" if unknown
  double resolution = 0;   // Angstrom, 0 if unknown
  double r_free = 0;       // 0 if unknown

  int64_t length() const { return static_cast<int64_t>(sequence.size()); }
  // "entry chain A" (or "entry" without a chain name), for messages.
  std::string label() const { return entry + (chain.empty() ? "" : " chain " + chain); }
  // What a tokenizer or encoder reading the backbone checks first: coords is [length(), 5, 3].
  void require_backbone_coords() const {
    const int64_t len = length();
    if (!coords.defined() || coords.dim() != 3 || coords.size(0) != len || coords.size(1) != kNumBackboneAtoms ||
        coords.size(2) != 3)
      fail(label(), ": coordinates must be [", len, ", ", int64_t(kNumBackboneAtoms), ", 3] for a sequence of ", len,
           " residues");
  }
};

}  // namespace sapling
