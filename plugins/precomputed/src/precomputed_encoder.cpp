// The `precomputed` structure encoder: per-residue embeddings of each chain read from a folder of files.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "chain_keys.hpp"
#include "components.hpp"
#include "embedding_file.hpp"
#include "sapling/error.hpp"

namespace sapling::precomputed {
namespace {

namespace fs = std::filesystem;

// The lexicographically first embedding file of `dir` (deterministic, whatever
// order the file system lists), or fails saying what the folder should hold.
fs::path first_embedding_file(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("precomputed embeddings: dir '", dir.string(), "' is not a folder");
  fs::path first;
  for (const auto& item : fs::directory_iterator(dir))
    if (item.is_regular_file() && is_embedding_file(item.path()) && (first.empty() || item.path() < first))
      first = item.path();
  if (first.empty())
    fail("precomputed embeddings: no .npy or .safetensors file in '", dir.string(),
         "' (expected one per chain, named ENTRY_CHAIN.npy or ENTRY.npy)");
  return first;
}

class PrecomputedEncoder final : public StructureEncoder {
 public:
  explicit PrecomputedEncoder(const fs::path& dir) : dir_(dir), first_(first_embedding_file(dir)) {
    dim_ = read_embedding_file(first_).size(1);
    if (dim_ == 0) fail(first_.string(), ": embeddings of dimension 0");
  }

  int64_t output_dim() const override { return dim_; }
  bool needs_weights() const override { return false; }

  // Reads the chain's file on every call: nothing large is cached (the trainer
  // caches what it uses; prepare embeds each chain once).
  torch::Tensor embed(const ChainStructure& chain) override {
    const std::string label = chain_label(chain.entry, chain.chain);
    const std::vector<std::string> keys = chain_keys(chain.entry, chain.chain);
    fs::path file;
    std::string tried;
    for (size_t k = 0; k < keys.size() && file.empty(); ++k) {
      std::vector<fs::path> found;
      for (const char* ext : {".npy", ".safetensors"}) {
        const fs::path candidate = dir_ / (keys[k] + ext);
        tried += (tried.empty() ? "" : ", ") + candidate.filename().string();
        if (fs::is_regular_file(candidate)) found.push_back(candidate);
      }
      if (found.size() > 1)
        fail("precomputed embeddings for ", label, ": both ", found[0].string(), " and ", found[1].string(),
             " exist; keep one");
      if (found.empty()) continue;
      if (k > 0) {
        const std::string other = claims_.claim(keys[k], chain.chain);
        if (!other.empty())
          fail("precomputed embeddings: ", found[0].string(), " (an entry-only name, meant for a one-chain file) would "
               "serve both chain ", other, " and chain ", chain.chain, " of ", chain.entry, "; name the files ",
               chain.entry, "_CHAIN", found[0].extension().string());
      }
      file = found[0];
    }
    if (file.empty())
      fail("precomputed embeddings: no file for ", label, " in ", dir_.string(), " (looked for ", tried, ")");
    torch::Tensor values;
    try {
      values = read_embedding_file(file);
    } catch (const Error&) {
      rethrow_with_context("precomputed embeddings for " + label);
    }
    if (values.size(0) != chain.length())
      fail("precomputed embeddings for ", label, ": ", file.string(), " has ", values.size(0), " rows but the chain has ",
           chain.length(), " residues (sapling prepare stores the residues with a CA by default, --sequence "
           "observed; embeddings must have one row per stored residue)");
    if (values.size(1) != dim_)
      fail("precomputed embeddings for ", label, ": ", file.string(), " has dimension ", values.size(1), " but ",
           first_.string(), " has ", dim_, "; every file in the folder must have the same dimension");
    // The interface's contract, as GearNet honours it: a residue without a CA has a zero row (no contrastive
    // partner), whatever the external tool wrote for it.
    if (chain.observed.defined() && chain.observed.numel() == chain.length())
      values = values.masked_fill(chain.observed.to(torch::kBool).logical_not().unsqueeze(1), 0);
    return values;
  }

  void load_weights(const fs::path& file) override {
    fail("precomputed embeddings have no weights (got ", file.string(), "); set the pgnn option dir instead");
  }
  void save_weights(const fs::path& file) const override {
    fail("precomputed embeddings have no weights to save to ", file.string());
  }

 private:
  fs::path dir_, first_;
  int64_t dim_ = 0;
  FallbackClaims claims_;
};

}  // namespace

OptionSchema encoder_schema() {
  OptionSchema schema;
  schema.add("dir", OptionType::Path)
      .require()
      .doc("folder of per-chain embeddings: KEY.npy or KEY.safetensors (one tensor, or one named 'embeddings'), "
           "float16/32/64 [L, D], KEY = ENTRY_CHAIN, or ENTRY for a one-chain file; D is read from the files");
  return schema;
}

std::shared_ptr<StructureEncoder> make_encoder(const Options& options) {
  try {
    return std::make_shared<PrecomputedEncoder>(options.get_path("dir"));
  } catch (const Error&) {
    if (options.section().empty()) throw;
    rethrow_with_context("[" + options.section() + "]");
  }
}

}  // namespace sapling::precomputed
