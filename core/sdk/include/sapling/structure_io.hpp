// Reading PDB / mmCIF files (optionally gzipped) into ChainStructure, one entry per protein chain.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/structure.hpp"

namespace sapling {

struct StructureReadOptions {
  // Emit chains of every model (NMR ensembles); entries of models after the
  // first get the suffix "_model<N>" (1-based model index).
  bool keep_all_models = false;
  // Author chain names to keep; empty keeps every protein chain.
  std::vector<std::string> chains;
  // Align SEQRES / entity_poly_seq to the observed residues so that missing
  // residues appear explicitly (observed == false). When false, or when the
  // file has no full sequence, the sequence is the observed residues in order.
  bool use_full_sequence = true;
};

// What the reader did to one file, for summaries and debugging.
struct StructureReadReport {
  int repaired_lines = 0;         // PDB lines whose columns 67-80 were blanked
  int skipped_chains = 0;         // chains with no polypeptide (nucleic acid, ligands, waters)
  int chains_with_full_sequence = 0;  // chains whose sequence came from SEQRES / entity_poly_seq
  int full_sequence_fallbacks = 0;    // SEQRES present but not usable (alignment failed) -> observed only
  int residues_without_ca = 0;   // polymer residues kept with observed == false because CA is absent
  int altloc_residues = 0;       // residues where an alternative location was chosen
  int modified_residues = 0;     // non-standard amino acids mapped to their parent one-letter code
  int atoms_with_bad_coordinates = 0;  // N/CA/C/O/CB with a non-finite or absurd (> 1e5 A) coordinate: treated as absent
};

// Reads all protein chains of `file` (.pdb/.ent/.cif/.mmcif, optionally .gz).
// First model only (unless keep_all_models); highest-occupancy alternate
// location; hydrogens and waters dropped; modified residues mapped to the
// parent one-letter code (MSE -> M), other unknowns -> X. Throws
// sapling::Error naming the file on empty/corrupt input or when the file has
// no protein chain (after the `chains` filter).
SAPLING_API std::vector<ChainStructure> read_structure(const std::filesystem::path& file,
                                                       const StructureReadOptions& options = {},
                                                       StructureReadReport* report = nullptr);

// The same from file contents already in memory (decompressed). `name` is the
// file name used for the entry name, format detection and error messages.
SAPLING_API std::vector<ChainStructure> read_structure_from_memory(std::string contents, const std::string& name,
                                                                   const StructureReadOptions& options = {},
                                                                   StructureReadReport* report = nullptr);

// File name without directories and .gz/.pdb/.ent/.cif/.mmcif extensions
// ("1abc_r_u.pdb.gz" -> "1abc_r_u").
SAPLING_API std::string structure_entry_name(const std::filesystem::path& file);

// The chain restricted to its residues with coordinates (a CA), in order:
// the sequence the published training pairs with its structure tokens and
// pGNN rows one to one. Tokenised, it gives what Foldseek gives for the file
// (Foldseek never sees unmodelled residues and computes 3Di across gaps).
SAPLING_API ChainStructure observed_residues(const ChainStructure& chain);

// True for names ending in .pdb/.ent/.cif/.mmcif, optionally followed by .gz.
SAPLING_API bool has_structure_extension(const std::filesystem::path& file);

// Expands inputs: a file is taken as is (whatever its extension), a folder
// contributes every file below it (recursively) with a structure extension,
// sorted. Throws sapling::Error for an input that does not exist.
SAPLING_API std::vector<std::filesystem::path> find_structure_files(const std::vector<std::filesystem::path>& inputs);

// One-letter code for a residue name: standard amino acids as themselves,
// modified amino acids as their parent (MSE -> M), anything else 'X'.
SAPLING_API char residue_one_letter(const std::string& residue_name);

// Blanks columns 67-80 of ATOM/HETATM lines whose element (77-78) or charge
// (79-80) field is not valid, which otherwise makes strict parsers reject the
// file. Returns the number of lines changed.
SAPLING_API int repair_pdb_columns(std::string& contents);

}  // namespace sapling
