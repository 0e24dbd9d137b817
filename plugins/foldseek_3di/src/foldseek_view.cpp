// Filters PDB text down to the residues Foldseek createdb encodes (gemmi's TER, altloc and chain-part rules).
#include "foldseek_view.hpp"

#include <set>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sapling::foldseek3di {
namespace {

bool starts_with(std::string_view line, std::string_view prefix) { return line.substr(0, prefix.size()) == prefix; }

bool is_atom_record(std::string_view line) { return starts_with(line, "ATOM  ") || starts_with(line, "HETATM"); }

// gemmi accepts "TER" followed by end of line, space, tab or CR.
bool is_ter_record(std::string_view line) {
  return starts_with(line, "TER") && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

std::string field(std::string_view line, size_t start, size_t length) {
  if (start >= line.size()) return {};
  return std::string(line.substr(start, length));
}

}  // namespace

FoldseekPdbView foldseek_pdb_view(const std::string& pdb_text) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < pdb_text.size();) {
    size_t end = pdb_text.find('\n', pos);
    if (end == std::string::npos) end = pdb_text.size();
    lines.emplace_back(pdb_text.data() + pos, end - pos);
    pos = end + 1;
  }

  // Pass 1: mark what Foldseek never sees, and find the last record of each
  // atom (model, chain, residue number + insertion code, atom name).
  // Keys are fixed-width column slices: model + chain (21-22) + residue
  // number and insertion code (23-27) [+ atom name (13-16)].
  std::vector<bool> keep(lines.size(), true);
  std::unordered_map<std::string, size_t> last_record;
  std::unordered_map<std::string, std::string> first_name;
  FoldseekPdbView view;
  int model = 0;
  std::set<std::string> terminated;   // chains of this model that had a TER
  std::string current_chain;          // chain of the last ATOM/HETATM record
  bool in_chain = false;
  for (size_t k = 0; k < lines.size(); ++k) {
    const std::string_view line = lines[k];
    if (starts_with(line, "MODEL ") || starts_with(line, "ENDMDL")) {
      if (starts_with(line, "ENDMDL")) ++model;
      terminated.clear();
      in_chain = false;
      continue;
    }
    if (is_ter_record(line)) {
      if (in_chain) terminated.insert(current_chain);
      continue;
    }
    if (!is_atom_record(line)) continue;
    const std::string chain = field(line, 20, 2);
    if (!in_chain || chain != current_chain) ++view.chain_parts;
    current_chain = chain;
    in_chain = true;
    if (terminated.count(chain)) {
      keep[k] = false;
      ++view.dropped_after_ter;
      continue;
    }
    std::string key = std::to_string(model) + '|' + chain + field(line, 22, 5);
    const std::string name = field(line, 17, 3);
    auto [it, inserted] = first_name.emplace(key, name);
    if (!inserted && it->second != name) {
      keep[k] = false;
      continue;
    }
    key += field(line, 12, 4);
    last_record[key] = k;
  }
  // Pass 2: of repeated atoms keep the last record.
  std::vector<bool> is_last(lines.size(), false);
  for (const auto& kv : last_record) is_last[kv.second] = true;
  std::string out;
  out.reserve(pdb_text.size());
  for (size_t k = 0; k < lines.size(); ++k) {
    if (!keep[k]) continue;
    if (is_atom_record(lines[k]) && !is_last[k]) {
      ++view.dropped_altloc;
      continue;
    }
    out.append(lines[k]);
    out.push_back('\n');
  }
  view.text = std::move(out);
  return view;
}

std::string foldseek_entry_name(const std::filesystem::path& file) {
  std::string name = file.filename().string();
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0) name.erase(name.size() - 3);
  const size_t dot = name.find_last_of('.');
  if (dot != std::string::npos && dot > 0) name.erase(dot);
  return name;
}

}  // namespace sapling::foldseek3di
