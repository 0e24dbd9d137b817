// The foldseek_3di plugin: registers the Foldseek 3Di StructureTokenizer and finds its shipped weights.
#include <dlfcn.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "foldseek_view.hpp"
#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/plugin.hpp"
#include "sapling/structure_io.hpp"
#include "three_di.hpp"

namespace sapling::foldseek3di {
namespace {

// The folder the build (and an install) puts next to this plugin's library:
// <dir of sapling_foldseek_3di.so>/foldseek_3di/.
std::filesystem::path shipped_data_dir() {
  Dl_info info{};
  static const int anchor = 0;  // any address inside this library
  if (dladdr(&anchor, &info) == 0 || info.dli_fname == nullptr)
    fail("foldseek_3di: cannot locate the plugin library to find its data folder; set the 'weights' and "
         "'centroids' options explicitly");
  return std::filesystem::path(info.dli_fname).parent_path() / "foldseek_3di";
}

std::filesystem::path data_file(const Options& options, const std::string& key, const std::string& file_name) {
  std::filesystem::path path = options.get_path(key);
  if (!path.empty()) return path;
  path = shipped_data_dir() / file_name;
  if (!std::filesystem::exists(path))
    fail("foldseek_3di: shipped file ", path.string(), " is missing (the build copies plugins/foldseek_3di/data/",
         file_name, " there); set option '", key, "' to its location");
  return path;
}

// Structure files store 3 decimals; ChainStructure keeps float32. Foldseek
// works on the decimal value read into a double, so recover it when the
// float is exactly the rounding of a 3-decimal number (always, for PDB
// files); otherwise keep the float's value. Either way the change is below
// the float's own rounding error.
double file_precision(float value) {
  const double widened = value;
  const double decimal = std::round(widened * 1000.0) / 1000.0;
  return static_cast<float>(decimal) == value ? decimal : widened;
}

// "x.cif", "x.mmCIF" (the name without ".gz"): gemmi reads them as mmCIF, not as PDB records.
bool is_mmcif_name(std::string name) {
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".cif") || ends_with(".mmcif");
}

class Foldseek3DiTokenizer final : public StructureTokenizer {
 public:
  explicit Foldseek3DiTokenizer(const Options& options)
      : encoder_(DenseNetwork::load(data_file(options, "weights", "encoder_weights_3di.kerasify"))),
        centroids_(load_centroids(data_file(options, "centroids", "centroids.tsv"))),
        min_confidence_(options.get_float("min_confidence")),
        foldseek_residues_(options.get_string("residues") == "foldseek") {
    if (encoder_.inputs() != kNumFeatures || encoder_.outputs() != kEmbeddingDim)
      fail(options.get_path("weights").string(), ": the encoder maps ", encoder_.inputs(), " -> ", encoder_.outputs(),
           " values; the 3Di encoder must map ", kNumFeatures, " features to ", kEmbeddingDim, " values");
  }

  int64_t num_states() const override { return kNumStates; }
  int64_t mask_state() const override { return kMaskState; }
  // The published structure-token head's 26 ids: the 20 3Di states (ids 4..23, letters in state order) in the
  // ESM-like layout, 0 <cls> 1 <pad> 2 <eos> 3 <unk> ... 24 <null_1> 25 <mask>.
  StructureVocabulary vocabulary() const override {
    const auto vocabulary = StructureVocabulary::esm_like(kNumStates);
    static_assert(kNumStates + 6 == 26, "the published 3Di vocabulary has 26 ids");
    return vocabulary;
  }

  std::string symbol(int64_t state) const override {
    if (state < 0 || state >= kNumStates) fail("foldseek_3di: state ", state, " is not in 0..", kNumStates - 1);
    return std::string(1, kAlphabet[state]);
  }

  std::string file_tag() const override { return "3di"; }

  // Foldseek createdb's view of a file: for PDB, gemmi's TER/altloc/chain-part
  // rules (foldseek_view.hpp); residues with a CA; chains of <= 3 residues or
  // only unknown residues skipped; ENTRY_CHAIN names when the file has
  // several chain parts.
  TokenizerFile read_file(const std::filesystem::path& file) const override {
    std::string contents = read_maybe_gzipped(file);
    std::string name = file.filename().string();
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0) name.erase(name.size() - 3);
    int chain_parts = -1;
    if (foldseek_residues_ && !is_mmcif_name(name)) {
      FoldseekPdbView view = foldseek_pdb_view(contents);
      contents = std::move(view.text);
      chain_parts = view.chain_parts;
    }
    StructureReadOptions read_options;
    read_options.use_full_sequence = false;  // the residues in the file, as Foldseek uses them
    const std::vector<ChainStructure> chains = read_structure_from_memory(std::move(contents), name, read_options);
    if (chain_parts < 0) chain_parts = static_cast<int>(chains.size());
    const std::string entry = foldseek_entry_name(file);
    TokenizerFile out;
    out.skip_rule = "chains with <= 3 residues or only unknown residues (Foldseek's rule)";
    for (const ChainStructure& chain : chains) {
      ChainStructure observed = observed_residues(chain);
      const bool all_unknown = observed.sequence.find_first_not_of("Xx") == std::string::npos;
      if (observed.length() <= 3 || all_unknown) {
        ++out.skipped;
        continue;
      }
      out.names.push_back(chain_parts > 1 ? entry + "_" + chain.chain : entry);
      out.chains.push_back(std::move(observed));
    }
    return out;
  }

  std::vector<int64_t> encode(const ChainStructure& chain) const override {
    const int64_t len = chain.length();
    chain.require_backbone_coords();
    const torch::Tensor coords = chain.coords.to(torch::kFloat32).contiguous();
    const float* data = coords.data_ptr<float>();
    std::vector<Vec3> n(len), ca(len), c(len), cb(len);
    auto atom = [&](int64_t residue, int64_t slot) {
      const float* p = data + (residue * kNumBackboneAtoms + slot) * 3;
      return Vec3{file_precision(p[0]), file_precision(p[1]), file_precision(p[2])};
    };
    for (int64_t i = 0; i < len; ++i) {
      n[i] = atom(i, kN);
      ca[i] = atom(i, kCA);
      c[i] = atom(i, kC);
      cb[i] = atom(i, kCB);
    }
    std::vector<int64_t> states = compute_states(n, ca, c, cb, encoder_, centroids_).states;

    // Low-confidence residues (B-factor / pLDDT below the threshold) are
    // masked after encoding, as Foldseek's --mask-bfactor-threshold does.
    if (min_confidence_ > 0 && chain.bfactor.defined() && chain.bfactor.numel() == len) {
      const torch::Tensor bfactor = chain.bfactor.to(torch::kFloat32).contiguous();
      const float* b = bfactor.data_ptr<float>();
      for (int64_t i = 0; i < len; ++i)
        if (b[i] < min_confidence_) states[i] = kMaskState;
    }
    return states;
  }

 private:
  DenseNetwork encoder_;
  Centroids centroids_;
  double min_confidence_;
  bool foldseek_residues_;
};

OptionSchema tokenizer_schema() {
  OptionSchema schema;
  schema.add("weights", OptionType::Path)
      .default_value(std::string())
      .doc("kerasify file of the 3Di encoder (empty: the copy shipped next to the plugin)");
  schema.add("centroids", OptionType::Path)
      .default_value(std::string())
      .doc("TSV of the 20 state centroids (empty: the copy shipped next to the plugin)");
  schema.add("min_confidence", OptionType::Float)
      .default_value(0.0)
      .min(0)
      .doc("residues whose CA B-factor / pLDDT is below this get the mask state (0 = off)");
  schema.add("residues", OptionType::String)
      .default_value(std::string("foldseek"))
      .one_of({"foldseek", "all"})
      .doc("what `sapling tokens` reads from a PDB file: foldseek, the residues Foldseek createdb encodes (drops a "
           "chain's records after its TER, last altloc); all, every residue with a CA");
  return schema;
}

}  // namespace
}  // namespace sapling::foldseek3di

SAPLING_PLUGIN("foldseek_3di", "Foldseek 3Di structural alphabet (20 states), identical to Foldseek createdb") {
  using namespace sapling;
  Registration<StructureTokenizer> entry{
      "foldseek_3di", "Foldseek's 3Di alphabet: 20 states per residue from backbone geometry, mask state 'D'",
      foldseek3di::tokenizer_schema(), [](const Options& options) -> std::shared_ptr<StructureTokenizer> {
        return std::make_shared<foldseek3di::Foldseek3DiTokenizer>(options);
      }};
  entry.is_default = true;  // the published structure tokens
  StructureTokenizerRegistry::instance().add(std::move(entry));
}
