// Reads the conformance structures and lays real per-residue data out as loss batches.
#include "fixtures.hpp"

#include <boost/dll/runtime_symbol_info.hpp>  // for program_location
#include <limits>

#include "sapling/error.hpp"
#include "sapling/structure_io.hpp"
#include "sapling/fields.hpp"
#include "sapling/structure_vocabulary.hpp"

namespace sapling::conformance {

namespace fs = std::filesystem;

Fixtures Fixtures::read(const std::vector<fs::path>& files) {
  Fixtures out;
  out.files = files;
  for (const auto& file : files) {
    const auto chains = read_structure(file);
    if (chains.empty()) fail(file.string(), ": no chain to run the conformance checks on");
    out.chains.push_back(observed_residues(chains.front()));
    for (const auto& chain : chains) out.file_chains.push_back(observed_residues(chain));
  }
  if (out.chains.size() < 2) fail("the conformance checks need at least 2 structure files, got ", out.chains.size());
  return out;
}

std::vector<fs::path> bundled_structures() {
  const std::vector<std::string> names = {"bm5/1AY7_l_u.pdb.gz", "psicov/1aba.pdb.gz", "bm5/1AY7_r_u.pdb.gz"};
  // Installed: <prefix>/bin/sapling-conformance -> <prefix>/share/sapling/conformance; in the build tree, the
  // repository's sample (the same files).
  std::error_code ec;
  const fs::path exe = boost::dll::program_location(ec).string();
  fs::path dir = exe.parent_path().parent_path() / "share" / "sapling" / "conformance";
  if (!fs::is_directory(dir)) dir = SAPLING_CONFORMANCE_SAMPLE_DIR;
  std::vector<fs::path> out;
  for (const auto& name : names) {
    out.push_back(dir / name);
    if (!fs::exists(out.back()))
      fail("the bundled conformance structure ", out.back().string(),
           " is missing; name structure files in [inputs] structures of the examples file");
  }
  return out;
}

ChainStructure first_residues(const ChainStructure& chain, int64_t n) {
  ChainStructure out = chain;
  out.sequence = chain.sequence.substr(0, static_cast<size_t>(n));
  out.coords = chain.coords.slice(0, 0, n).clone();
  out.observed = chain.observed.slice(0, 0, n).clone();
  if (chain.bfactor.defined()) out.bfactor = chain.bfactor.slice(0, 0, n).clone();
  return out;
}

LossBatch make_loss_batch(const Fixtures& fixtures, const std::string& loss, const std::vector<std::string>& fields,
                          int64_t residues0, int64_t residues1) {
  torch::manual_seed(7);
  LossBatch b;
  const int64_t residues[kBatch] = {residues0, residues1};
  auto residue_mask = torch::zeros({kBatch, kTokens}, torch::kBool);
  auto segments = torch::full({kBatch, kTokens}, -1, torch::kInt64);
  std::vector<ChainStructure> proteins;
  for (int64_t row = 0; row < kBatch; ++row) {
    residue_mask[row].slice(0, 1, 1 + residues[row]).fill_(true);
    segments[row].slice(0, 0, 2 + residues[row]).fill_(row);  // BOS, residues, EOS
    proteins.push_back(fixtures.chains[static_cast<size_t>(row)]);
  }
  b.plm.last_hidden = torch::randn({kBatch, kTokens, kHidden}).requires_grad_(true);
  b.plm.logits = torch::randn({kBatch, kTokens, kVocab}).requires_grad_(true);
  b.inputs.plm = &b.plm;
  b.inputs.residue_mask = residue_mask;
  b.inputs.segments = segments;
  b.inputs.ids = torch::randint(4, 24, {kBatch, kTokens}, torch::kInt64);
  // Every third real residue masked for MLM.
  auto labels = torch::full({kBatch, kTokens}, -100, torch::kInt64);
  auto chosen = residue_mask & (torch::arange(kTokens).remainder(3) == 1).unsqueeze(0);
  labels = torch::where(chosen, torch::randint(4, 24, {kBatch, kTokens}, torch::kInt64), labels);
  b.inputs.mlm_labels = labels;
  auto tokens = torch::randint(0, kStates, {kBatch, kTokens}, torch::kInt64) + StructureVocabulary::esm_like(kStates).first_state;
  tokens = torch::where(residue_mask, tokens, torch::full_like(tokens, -100));
  tokens[0][2] = -100;  // one residue without a structure token
  b.inputs.structure_tokens = tokens;
  b.inputs.pgnn_embeddings = torch::randn({kBatch, kTokens, kPgnn}) * residue_mask.unsqueeze(-1);
  fill_declared_fields(b.inputs, loss, fields, proteins);
  return b;
}

namespace {

// [B, T, rest...] of NaN with row b's tokens 1..n taken from values(proteins[b])[0:n].
template <typename Values>
torch::Tensor per_token(const LossInputs& inputs, const std::vector<ChainStructure>& proteins, Values values) {
  const int64_t batch = inputs.residue_mask.size(0), tokens = inputs.residue_mask.size(1);
  std::vector<int64_t> shape = {batch, tokens};
  const auto first = values(proteins.front());
  for (int64_t d = 1; d < first.dim(); ++d) shape.push_back(first.size(d));
  auto out = torch::full(shape, std::numeric_limits<float>::quiet_NaN(), torch::kFloat32);
  for (int64_t row = 0; row < batch; ++row) {
    const int64_t n = inputs.residue_mask[row].sum().item<int64_t>();
    const auto& protein = proteins.at(static_cast<size_t>(row));
    if (protein.length() < n) fail("conformance: ", protein.label(), " has fewer than ", n, " residues");
    out[row].slice(0, 1, 1 + n).copy_(values(protein).slice(0, 0, n));
  }
  return out;
}

}  // namespace

void fill_declared_fields(LossInputs& inputs, const std::string& loss, const std::vector<std::string>& declared,
                          const std::vector<ChainStructure>& proteins) {
  for (const auto& field : declared) {
    if (field == loss_fields::kStructureTokens || field == loss_fields::kPgnn) continue;  // named members, always set
    if (field == loss_fields::kCoords) {
      inputs.fields[field] =
          per_token(inputs, proteins, [](const ChainStructure& c) { return c.coords.to(torch::kFloat32); });
    } else if (field == loss_fields::kBfactor) {
      inputs.fields[field] = per_token(inputs, proteins, [](const ChainStructure& c) {
        return c.bfactor.defined() ? c.bfactor.to(torch::kFloat32)
                                   : torch::full({c.length()}, std::numeric_limits<float>::quiet_NaN());
      });
    } else {
      // A field a plugin's FieldProvider computes from each chain (compute_field names the provider or says
      // that none is registered), laid out like the trainer lays it out.
      inputs.fields[field] = per_token(inputs, proteins, [&](const ChainStructure& c) {
        const auto values = compute_field(field, c);
        return values.is_floating_point() ? values.to(torch::kFloat32) : values;
      });
    }
  }
}

}  // namespace sapling::conformance
