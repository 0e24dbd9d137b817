// PDB/mmCIF reading with Gemmi: in-memory repair, protein chain pick, SEQRES alignment, backbone arrays.
#include "sapling/structure_io.hpp"

#include <cstdint>  // gemmi 0.5.7 headers need it first under newer g++
// clang-format off
#include <gemmi/align.hpp>
#include <gemmi/mmcif.hpp>
#include <gemmi/cif.hpp>
#include <gemmi/mmread.hpp>
#include <gemmi/pdb.hpp>
#include <gemmi/polyheur.hpp>
#include <gemmi/remarks.hpp>
#include <gemmi/resinfo.hpp>
// clang-format on

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {
namespace {

bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

std::string strip_suffix_ci(const std::string& s, const std::string& suffix) {
  return ends_with_ci(s, suffix) ? s.substr(0, s.size() - suffix.size()) : s;
}

// The charge rule gemmi 0.5.7 applies to columns 79-80 ("2+", "+2", blank).
bool charge_field_ok(char digit, char sign) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (is_digit(sign)) std::swap(digit, sign);
  if (!is_digit(digit)) return true;  // gemmi ignores a field without a digit
  return sign == '+' || sign == '-' || sign == ' ' || sign == '\0';
}

// Columns 77-78: blank, non-alphabetic (gemmi then infers the element from
// the atom name) or a known element symbol.
bool element_field_ok(char a, char b) {
  if (!std::isalpha(static_cast<unsigned char>(a)) && !std::isalpha(static_cast<unsigned char>(b))) return true;
  const char symbol[3] = {a, b, '\0'};
  if (gemmi::find_element(symbol) != gemmi::El::X) return true;
  const char first = static_cast<char>(std::toupper(static_cast<unsigned char>(a == ' ' ? b : a)));
  return first == 'X' && (a == ' ' || b == ' ');
}

// Binary data (a NUL byte or many control characters) is not a coordinate file.
bool looks_binary(const std::string& contents) {
  const size_t n = std::min<size_t>(contents.size(), 1 << 16);
  size_t control = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(contents[i]);
    if (c == 0) return true;
    if (c < 32 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v') ++control;
  }
  return control * 100 > n;
}

bool only_whitespace(const std::string& contents) {
  return std::all_of(contents.begin(), contents.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

// Real coordinates stay within a few thousand Angstrom (PDB columns allow
// -999.999..9999.999); anything beyond 1e5 or non-finite is corruption.
bool plausible_position(const gemmi::Position& p) {
  constexpr double kMaxAbs = 1e5;
  return std::isfinite(p.x) && std::isfinite(p.y) && std::isfinite(p.z) && std::abs(p.x) < kMaxAbs &&
         std::abs(p.y) < kMaxAbs && std::abs(p.z) < kMaxAbs;
}

struct ChosenAtoms {
  std::array<const gemmi::Atom*, kNumBackboneAtoms> atoms{};
  bool used_altloc = false;
};

// Picks N, CA, C, O, CB from one residue: atoms without altloc, or of the
// residue's highest-occupancy alternative location (ties: first seen).
ChosenAtoms pick_backbone(const gemmi::Residue& res) {
  char best_altloc = '\0';
  float best_occupancy = -1.f;
  for (const gemmi::Atom& atom : res.atoms)
    if (atom.altloc != '\0' && atom.occ > best_occupancy) {
      best_occupancy = atom.occ;
      best_altloc = atom.altloc;
    }
  static const std::array<const char*, kNumBackboneAtoms> names = {"N", "CA", "C", "O", "CB"};
  ChosenAtoms chosen;
  chosen.used_altloc = best_altloc != '\0';
  for (size_t slot = 0; slot < names.size(); ++slot) {
    const gemmi::Atom* fallback = nullptr;  // atom present only in another altloc
    for (const gemmi::Atom& atom : res.atoms) {
      if (atom.name != names[slot]) continue;
      if (atom.altloc == '\0' || atom.altloc == best_altloc) {
        chosen.atoms[slot] = &atom;
        break;
      }
      if (!fallback || atom.occ > fallback->occ) fallback = &atom;
    }
    if (!chosen.atoms[slot]) chosen.atoms[slot] = fallback;
  }
  return chosen;
}

std::string experimental_method(const gemmi::Structure& st) {
  std::string method = st.get_info("_exptl.method");
  if (method.empty())
    for (const auto& exp : st.meta.experiments)
      if (!exp.method.empty()) {
        method = exp.method;
        break;
      }
  std::transform(method.begin(), method.end(), method.begin(),
                 [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
  // PDB EXPDTA may list several methods separated by "; "; keep the text as is.
  return gemmi::trim_str(method);
}

double refinement_r_free(const gemmi::Structure& st, double from_cif) {
  if (from_cif > 0) return from_cif;
  for (const auto& ref : st.meta.refinement)
    if (!std::isnan(ref.r_free) && ref.r_free > 0) return ref.r_free;
  return 0;
}

// True when the PDB text has SEQRES records (a full sequence per chain).
bool has_seqres(const std::string& contents) {
  return contents.compare(0, 6, "SEQRES") == 0 || contents.find("\nSEQRES") != std::string::npos;
}

// gemmi reads no atoms at all, silently, when _atom_site lacks one of the
// columns it requires; name the missing ones instead of "no atoms".
void check_atom_site_columns(gemmi::cif::Block& block, const std::string& name) {
  static const char* const required[] = {"id",      "type_symbol", "label_alt_id", "label_asym_id",  "Cartn_x",
                                         "Cartn_y", "Cartn_z",     "occupancy",    "B_iso_or_equiv", "auth_seq_id"};
  bool has_atom_site = false;
  std::string missing;
  for (const char* tag : required) {
    if (block.find_values(std::string("_atom_site.") + tag))
      has_atom_site = true;
    else
      missing += (missing.empty() ? "_atom_site." : ", _atom_site.") + std::string(tag);
  }
  if (has_atom_site && !missing.empty()) fail(name, ": mmCIF atom table lacks mandatory column(s) ", missing);
}

// Calls visit(start, length) for each line of `contents`, the length without
// its "\n" or "\r\n" ending (the callers edit or copy lines in place).
template <typename Visit>
void for_each_line(const std::string& contents, Visit visit) {
  size_t start = 0;
  while (start < contents.size()) {
    size_t end = contents.find('\n', start);
    if (end == std::string::npos) end = contents.size();
    size_t len = end - start;
    if (len > 0 && contents[start + len - 1] == '\r') --len;
    visit(start, len);
    start = end + 1;
  }
}

// gemmi 0.5.7 reads fixed columns of SSBOND / LINK / LINKR records up to
// column 80 once a line is longer than 73 characters, past the end of a
// shorter line (a heap-buffer-overflow found by fuzz_structure). Such lines are
// padded with spaces to 80 columns; the string is copied only when needed.
void pad_connection_records(std::string& contents) {
  auto is_connection = [](const char* line, size_t len) {
    auto upper = [&](size_t i) {
      return i < len ? static_cast<char>(std::toupper(static_cast<unsigned char>(line[i]))) : ' ';
    };
    // gemmi recognises a record by its first four letters, any case ("SSBON HIGHEST..." is an SSBOND).
    const std::string name{upper(0), upper(1), upper(2), upper(3)};
    return name == "SSBO" || name == "LINK";
  };
  constexpr size_t kColumns = 80;
  std::string padded;
  size_t copied = 0;  // contents[0, copied) is already in `padded`
  for_each_line(contents, [&](size_t start, size_t len) {
    if (len > 60 && len < kColumns && is_connection(contents.data() + start, len)) {
      if (padded.empty()) padded.reserve(contents.size() + 1024);
      padded.append(contents, copied, start + len - copied);
      padded.append(kColumns - len, ' ');
      copied = start + len;
    }
  });
  if (copied == 0) return;
  padded.append(contents, copied, std::string::npos);
  contents.swap(padded);
}

struct ParsedStructure {
  gemmi::Structure st;
  bool split_on_ter = false;  // PDB without SEQRES: chains classified residue by residue
  double r_free = 0;  // gemmi 0.5.7 reads R-free from PDB REMARK 3 only; mmCIF is read here
};

ParsedStructure parse_structure(std::string& contents, const std::string& name, StructureReadReport& report) {
  ParsedStructure parsed;
  gemmi::CoorFormat format = gemmi::coor_format_from_content(contents.data(), contents.data() + contents.size());
  if (format == gemmi::CoorFormat::Unknown) fail(name, ": too short to be a PDB or mmCIF file");
  if (format == gemmi::CoorFormat::Mmjson) fail(name, ": mmJSON is not supported (expected PDB or mmCIF)");
  if (format == gemmi::CoorFormat::Mmcif) {
    gemmi::cif::Document doc = gemmi::cif::read_memory(contents.data(), contents.size(), name.c_str());
    if (doc.blocks.empty()) fail(name, ": mmCIF file has no data block");
    check_atom_site_columns(doc.blocks[0], name);
    parsed.st = gemmi::make_structure(doc);
    if (const std::string* v = doc.blocks[0].find_value("_refine.ls_R_factor_R_free"))
      if (!gemmi::cif::is_null(*v)) parsed.r_free = gemmi::cif::as_number(*v, 0.0);
    return parsed;
  }
  report.repaired_lines += repair_pdb_columns(contents);
  pad_connection_records(contents);
  // Without SEQRES, a TER inside one chain name separates polymers (BM5
  // stores antibody L and H chains as chain A with a TER between them);
  // gemmi would make everything after the TER a ligand. Splitting keeps both
  // parts, which become chains "A", "A_2", ... in protein_chains().
  gemmi::PdbReadOptions pdb_options;
  pdb_options.split_chain_on_ter = parsed.split_on_ter = !has_seqres(contents);
  parsed.st = gemmi::read_pdb_from_memory(contents.data(), contents.size(), name, pdb_options);
  gemmi::read_metadata_from_remarks(parsed.st);
  return parsed;
}

// The polypeptide residues of one chain and the entity holding its full sequence.
struct ProteinChain {
  std::string name;
  std::vector<const gemmi::Residue*> residues;
  const gemmi::Entity* entity = nullptr;
};

// An amino acid that belongs to a chain: tabulated amino acids (standard
// ones only as ATOM records: a HETATM standard residue is a free ligand) and
// untabulated residues with N, CA and C (modified residues gemmi does not know).
bool is_chain_amino_acid(const gemmi::Residue& res) {
  const gemmi::ResidueInfo info = gemmi::find_tabulated_residue(res.name);
  if (info.found()) return info.is_amino_acid() && !(info.is_standard() && res.het_flag == 'H');
  return res.find_atom("CA", '*') && res.find_atom("N", '*') && res.find_atom("C", '*');
}

// Without SEQRES gemmi's polymer heuristic stops at the first non-amino-acid
// (an ACE cap before residue 1 turns the whole chain into a ligand), so the
// amino acids are picked residue by residue.
std::vector<const gemmi::Residue*> amino_acids_of(const gemmi::Chain& chain) {
  std::vector<const gemmi::Residue*> residues;
  const gemmi::ConstResidueSpan whole = chain.whole();  // first_conformer() keeps a reference to it
  for (const gemmi::Residue& res : whole.first_conformer())
    if (is_chain_amino_acid(res)) residues.push_back(&res);
  return residues;
}

std::vector<ProteinChain> protein_chains(const gemmi::Structure& st, const gemmi::Model& model, bool by_residue,
                                         const StructureReadOptions& options, StructureReadReport& report) {
  std::vector<ProteinChain> chains;
  std::map<std::string, int> pieces_seen;  // protein pieces per author chain name
  for (const gemmi::Chain& chain : model.chains) {
    if (!options.chains.empty() &&
        std::find(options.chains.begin(), options.chains.end(), chain.name) == options.chains.end())
      continue;
    if (by_residue) {
      auto residues = amino_acids_of(chain);
      const bool has_atom_record = std::any_of(residues.begin(), residues.end(),
                                               [](const gemmi::Residue* r) { return r->het_flag != 'H'; });
      if (!has_atom_record) {  // ligands, waters, nucleic acids
        if (chain.get_polymer()) ++report.skipped_chains;  // e.g. nucleic acid
        continue;
      }
      // A TER-separated piece with the name of an earlier one is its own
      // chain ("A", then "A_2", ...): BM5 merges complexes into one chain ID.
      const int piece = ++pieces_seen[chain.name];
      chains.push_back({piece == 1 ? chain.name : chain.name + "_" + std::to_string(piece), std::move(residues), nullptr});
      continue;
    }
    gemmi::ConstResidueSpan polymer = chain.get_polymer();
    if (!polymer) continue;  // ligands or waters after a TER
    const gemmi::Entity* entity = st.get_entity_of(polymer);
    // A full sequence (SEQRES / entity_poly) makes the entity's type
    // authoritative; otherwise classify the residues themselves.
    const gemmi::PolymerType ptype = entity && !entity->full_sequence.empty() &&
                                             entity->polymer_type != gemmi::PolymerType::Unknown
                                         ? entity->polymer_type
                                         : gemmi::check_polymer_type(polymer);
    if (!gemmi::is_polypeptide(ptype)) {
      ++report.skipped_chains;
      continue;
    }
    ProteinChain protein{chain.name, {}, entity};
    for (const gemmi::Residue& res : polymer.first_conformer()) protein.residues.push_back(&res);
    chains.push_back(std::move(protein));
  }
  return chains;
}

// Turns the protein chains of one model into ChainStructures.
void collect_chains(const gemmi::Structure& st, const gemmi::Model& model, const std::string& entry,
                    const ParsedStructure& parsed,
                    const StructureReadOptions& options, StructureReadReport& report,
                    std::vector<ChainStructure>& out) {
  const std::string method = experimental_method(st);
  const double resolution = std::isfinite(st.resolution) && st.resolution > 0 ? st.resolution : 0.0;
  const double r_free = refinement_r_free(st, parsed.r_free);
  const float nan = std::numeric_limits<float>::quiet_NaN();

  for (const ProteinChain& protein : protein_chains(st, model, parsed.split_on_ter, options, report)) {
    const auto& residues = protein.residues;
    const gemmi::Entity* entity = protein.entity;
    if (residues.empty()) continue;

    // Place observed residues on the full sequence (label_seq, 1-based) when
    // every residue has a distinct in-range position and the residue names
    // mostly agree; otherwise use the observed residues only.
    std::vector<const gemmi::Residue*> slots;
    std::string sequence;
    bool placed = false;
    if (options.use_full_sequence && entity && !entity->full_sequence.empty()) {
      const auto& full = entity->full_sequence;
      slots.assign(full.size(), nullptr);
      placed = true;
      size_t mismatches = 0;
      for (const gemmi::Residue* res : residues) {
        if (!res->label_seq || *res->label_seq < 1 || static_cast<size_t>(*res->label_seq) > full.size() ||
            slots[*res->label_seq - 1]) {
          placed = false;
          break;
        }
        const size_t k = static_cast<size_t>(*res->label_seq - 1);
        slots[k] = res;
        if (residue_one_letter(res->name) != residue_one_letter(gemmi::Entity::first_mon(full[k]))) ++mismatches;
      }
      if (placed && mismatches * 10 > residues.size()) placed = false;
      if (placed) {
        for (size_t k = 0; k < full.size(); ++k)
          sequence += residue_one_letter(slots[k] ? slots[k]->name : gemmi::Entity::first_mon(full[k]));
        ++report.chains_with_full_sequence;
      } else {
        ++report.full_sequence_fallbacks;
      }
    }
    if (!placed) {
      slots = residues;
      sequence.clear();
      for (const gemmi::Residue* res : residues) sequence += residue_one_letter(res->name);
    }

    const int64_t length = static_cast<int64_t>(slots.size());
    ChainStructure cs;
    cs.entry = entry;
    cs.chain = protein.name;
    cs.sequence = sequence;
    cs.method = method;
    cs.resolution = resolution;
    cs.r_free = r_free;
    cs.coords = torch::full({length, kNumBackboneAtoms, 3}, nan, torch::kFloat32);
    cs.observed = torch::zeros({length}, torch::kBool);
    cs.bfactor = torch::full({length}, nan, torch::kFloat32);
    auto coords = cs.coords.accessor<float, 3>();
    auto observed = cs.observed.accessor<bool, 1>();
    auto bfactor = cs.bfactor.accessor<float, 1>();
    for (int64_t i = 0; i < length; ++i) {
      const gemmi::Residue* res = slots[static_cast<size_t>(i)];
      if (!res) continue;
      const gemmi::ResidueInfo info = gemmi::find_tabulated_residue(res->name);
      if (info.found() && info.is_amino_acid() && !info.is_standard() && sequence[static_cast<size_t>(i)] != 'X')
        ++report.modified_residues;
      ChosenAtoms chosen = pick_backbone(*res);
      // A NaN or 1e30 coordinate (hand-edited or corrupt files) would poison
      // every distance computed later; such an atom counts as absent.
      for (const gemmi::Atom*& atom : chosen.atoms)
        if (atom && !plausible_position(atom->pos)) {
          ++report.atoms_with_bad_coordinates;
          atom = nullptr;
        }
      if (!chosen.atoms[kCA]) {
        ++report.residues_without_ca;
        continue;  // kept in the sequence, unobserved, all coordinates NaN
      }
      if (chosen.used_altloc) ++report.altloc_residues;
      observed[i] = true;
      bfactor[i] = chosen.atoms[kCA]->b_iso;
      for (int64_t a = 0; a < kNumBackboneAtoms; ++a)
        if (const gemmi::Atom* atom = chosen.atoms[static_cast<size_t>(a)]) {
          coords[i][a][0] = static_cast<float>(atom->pos.x);
          coords[i][a][1] = static_cast<float>(atom->pos.y);
          coords[i][a][2] = static_cast<float>(atom->pos.z);
        }
    }
    out.push_back(std::move(cs));
  }
}

}  // namespace

std::string structure_entry_name(const std::filesystem::path& file) {
  std::string name = file.filename().string();
  name = strip_suffix_ci(name, ".gz");
  for (const char* ext : {".pdb", ".ent", ".cif", ".mmcif"}) {
    const std::string stripped = strip_suffix_ci(name, ext);
    if (stripped.size() != name.size()) return stripped;
  }
  return name;
}

char residue_one_letter(const std::string& residue_name) {
  const gemmi::ResidueInfo info = gemmi::find_tabulated_residue(residue_name);
  if (!info.found() || !info.is_amino_acid() || info.one_letter_code == ' ') return 'X';
  return static_cast<char>(std::toupper(static_cast<unsigned char>(info.one_letter_code)));
}

int repair_pdb_columns(std::string& contents) {
  int repaired = 0;
  for_each_line(contents, [&](size_t start, size_t len) {
    char* line = &contents[start];
    const bool atom_record = (len >= 6 && (std::strncmp(line, "ATOM  ", 6) == 0 || std::strncmp(line, "HETATM", 6) == 0));
    if (atom_record && len > 66) {
      auto col = [&](size_t one_based) { return one_based <= len ? line[one_based - 1] : ' '; };
      if (!element_field_ok(col(77), col(78)) || !charge_field_ok(col(79), col(80))) {
        for (size_t c = 66; c < std::min<size_t>(len, 80); ++c) line[c] = ' ';
        ++repaired;
      }
    }
  });
  return repaired;
}

std::vector<ChainStructure> read_structure_from_memory(std::string contents, const std::string& name,
                                                       const StructureReadOptions& options,
                                                       StructureReadReport* report) {
  StructureReadReport local;
  StructureReadReport& rep = report ? *report : local;
  if (contents.empty()) fail(name, ": empty file");
  if (looks_binary(contents)) fail(name, ": binary data, not a PDB or mmCIF text file");
  if (only_whitespace(contents)) fail(name, ": empty file (whitespace only)");

  ParsedStructure parsed;
  try {
    parsed = parse_structure(contents, name, rep);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind(name, 0) == 0) fail(what);  // gemmi sometimes names the file already
    fail(name, ": cannot parse: ", what);
  }
  gemmi::Structure& st = parsed.st;
  if (st.models.empty()) fail(name, ": no atoms (no ATOM/HETATM or _atom_site records)");
  // Hydrogens are never emitted (only N, CA, C, O, CB are picked by name), so
  // they are not removed by element: junk element columns in real files mark
  // a CA as "H" (BM5 1VFB_l_u), which would drop a real residue.
  gemmi::setup_entities(st);
  gemmi::assign_label_seq_id(st, false);

  const std::string entry = structure_entry_name(name);
  std::vector<ChainStructure> chains;
  const size_t model_count = options.keep_all_models ? st.models.size() : 1;
  for (size_t m = 0; m < model_count; ++m)
    collect_chains(st, st.models[m], m == 0 ? entry : entry + "_model" + std::to_string(m + 1), parsed, options,
                   rep,
                   chains);
  if (chains.empty()) {
    if (options.chains.empty()) fail(name, ": no protein chain");
    std::string wanted;
    for (const auto& c : options.chains) wanted += (wanted.empty() ? "" : ",") + c;
    fail(name, ": no protein chain among the requested chains ", wanted);
  }
  return chains;
}

std::vector<ChainStructure> read_structure(const std::filesystem::path& file, const StructureReadOptions& options,
                                           StructureReadReport* report) {
  return read_structure_from_memory(read_maybe_gzipped(file), file.string(), options, report);
}

ChainStructure observed_residues(const ChainStructure& chain) {
  const auto keep = chain.observed.to(torch::kBool);
  if (keep.all().item<bool>()) return chain;
  ChainStructure out = chain;
  const auto index = keep.nonzero().squeeze(1);
  out.sequence.clear();
  const auto* flags = keep.contiguous().data_ptr<bool>();
  for (int64_t i = 0; i < chain.length(); ++i)
    if (flags[i]) out.sequence += chain.sequence[static_cast<size_t>(i)];
  out.coords = chain.coords.index_select(0, index);
  out.observed = chain.observed.index_select(0, index);
  if (chain.bfactor.defined() && chain.bfactor.numel() == chain.length()) out.bfactor = chain.bfactor.index_select(0, index);
  return out;
}

}  // namespace sapling
