// Foldseek-compatible view of a PDB file: which records Foldseek (through gemmi) turns into residues, and entry names.
#pragma once
#include <filesystem>
#include <string>

namespace sapling::foldseek3di {

struct FoldseekPdbView {
  std::string text;     // the PDB text with the records Foldseek ignores removed
  int chain_parts = 0;  // gemmi chain objects Foldseek counts for the "_CHAIN" suffix
  int dropped_after_ter = 0;  // ATOM/HETATM records of a chain after its TER
  int dropped_altloc = 0;     // alternative-location records superseded by a later one
};

// Applies gemmi's PDB semantics as Foldseek createdb sees them:
//  - after a TER, later records of that chain name (in the same model) belong
//    to a non-polymer part, which Foldseek skips: they are removed (this also
//    drops the chain part after a TER-marked chain break);
//  - Foldseek reads every atom of a residue and keeps the last one of each
//    name, so of alternative locations only the last record of each atom is kept;
//  - of residues sharing a number (microheterogeneity), the first is kept.
FoldseekPdbView foldseek_pdb_view(const std::string& pdb_text);

// Foldseek's entry name: the file name without ".gz" and one more extension,
// whatever it is ("1abc.chain.pdb.gz" -> "1abc.chain").
std::string foldseek_entry_name(const std::filesystem::path& file);

}  // namespace sapling::foldseek3di
