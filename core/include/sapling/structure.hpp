// In-memory protein chain structure: sequence, backbone coordinates, mask, B-factors, entry metadata.
#pragma once
#include <torch/torch.h>

#include <string>

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
};

}  // namespace sapling
