// The published recipe's switches (docs/fidelity.md): the golden loss against an independent PyTorch
// implementation, the reference model's held-out splits, observed-residue sequences, validation without
// selection, weight decay on every parameter, and <unk> as a residue.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "sapling/dataset.hpp"
#include "sapling/masking.hpp"
#include "sapling/model_loading.hpp"
#include "sapling/safetensors.hpp"
#include "metrics_support.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using sapling::test::run_command;

namespace {

using sapling::test::quote;

const fs::path kBundledEsm2 = sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16";

// The bundled ESM2 (8M shape) trained on the sample with the published recipe, small (small_train_command):
// everything else is method.toml's.
std::string method_command(const std::string& recipe, const fs::path& out, const std::string& extra) {
  return sapling::test::small_train_command(recipe, kBundledEsm2, out, extra);
}

// A reference model trained for 2 steps on the reference splits (shared by the tests below).
const fs::path& reference_run() {
  static const fs::path dir = sapling::test::small_reference_run("reference_esm2_8m.toml", kBundledEsm2, "fidelity-reference");
  return dir;
}

}  // namespace

TEST_CASE("golden loss: the published recipe's losses, selection and total equal an independent PyTorch "
          "implementation",
          "[fidelity][golden]") {
  const auto root = sapling::test::temp_dir("fidelity-golden");
  const auto dump = root / "batch.safetensors";
  auto r = run_command(method_command("saesm2_8m.toml", root / "unused",
                                      "--set reference_model.path=" + quote(reference_run() / "best") +
                                          " --inspect-batch " + quote(dump)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  sapling::SafetensorsFile stored(dump);
  for (const char* key : {"batch.ids", "model.logits", "reference.logits", "heads.contrastive.logit_scale",
                          "reference_heads.structure_token.output_layer.weight", "terms.structure_token.keep",
                          "terms.contrastive.seq_to_struct.reference_loss", "total"})
    CHECK(stored.contains(key));
  // The published batch is 8 proteins; the test's 4 (the constant's B follows proteins_per_batch).
  const std::string python = sapling::test::python();
  if (run_command(python + " -c 'import torch, safetensors'").exit_code != 0) {
    // Debian's python3 (the SAPLING_LIBTORCH=system build) has torch but no safetensors package.
    SAPLING_SKIP(python << " lacks torch or safetensors (scripts/install-deps.sh installs both in .venv)");
  }
  r = run_command(python + " " + quote(sapling::test::source_dir() / "tests/golden/published_losses.py") + " " +
                  quote(dump) + " --batch-size 4 --tolerance 1e-5");
  std::cout << r.output;
  INFO("needs PyTorch in " << python << " (scripts/install-deps.sh installs it in .venv)");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("selected residues: identical"));
  fs::remove_all(root);
}

TEST_CASE("prepare --reference-fraction: a three-way split by complex, the reference's splits disjoint from "
          "the main ones",
          "[fidelity][prepare]") {
  // The sample dataset's split, without the tokens and embeddings it does not need here.
  const auto dataset = sapling::test::temp_dir("fidelity-splits") / "dataset";
  const auto prepared = run_command(sapling::test::sapling_exe() + " prepare " +
                                    quote(sapling::test::source_dir() / "datasets/sample/bm5") + " " +
                                    quote(sapling::test::source_dir() / "datasets/sample/psicov") + " --out " +
                                    quote(dataset) + " --valid-fraction 0.2 --reference-fraction 0.4 --seed 6 --quiet");
  INFO(prepared.output);
  REQUIRE(prepared.exit_code == 0);
  sapling::StructureDataset data(dataset);
  std::map<std::string, std::set<std::string>> groups_by_split;
  std::map<std::string, int64_t> high_quality;
  for (size_t i = 0; i < data.size(); ++i) {
    const auto& meta = data.metadata(i);
    groups_by_split[meta.split].insert(meta.group);
    high_quality[meta.split] += meta.high_quality;
  }
  for (const char* split : {"train", "valid", "reference_train", "reference_valid"}) {
    INFO(split);
    CHECK(groups_by_split[split].size() > 0);
  }
  CHECK(high_quality["reference_train"] > 0);
  CHECK(high_quality["reference_valid"] > 0);
  // No complex on both sides: the main model never trains or validates on the reference's data.
  for (const char* main : {"train", "valid"})
    for (const char* held : {"reference_train", "reference_valid"})
      for (const auto& group : groups_by_split[main]) {
        INFO(group << " in " << main << " and " << held);
        CHECK(groups_by_split[held].count(group) == 0);
      }
  // Adding the reference band moves no complex into or out of "valid".
  for (const auto& group : groups_by_split["valid"]) CHECK(sapling::assign_split(group, 0.2, 6) == "valid");
  CHECK(sapling::assign_split("1AHW", 0.2, 0, 0.0) == sapling::assign_split("1AHW", 0.2, 0));
  const auto r = run_command(sapling::test::sapling_exe() + " prepare " +
                             quote(sapling::test::source_dir() / "datasets/sample/psicov") + " --out " +
                             quote(sapling::test::temp_dir("fidelity-badfraction")) +
                             " --valid-fraction 0.5 --reference-fraction 0.6");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--reference-fraction must be in [0, 1 - valid-fraction] = [0, 0.5], got 0.6"));
}

TEST_CASE("prepare --sequence observed: residues, tokens and pGNN rows one to one, 3Di as Foldseek computes it",
          "[fidelity][prepare]") {
  const auto root = sapling::test::temp_dir("fidelity-observed");
  const auto src = sapling::test::source_dir();
  const std::string inputs = quote(src / "datasets/sample/bm5");
  const std::string embed = " --pgnn gearnet --pgnn-weights " +
                            quote(src / "datasets/models/gearnet_edge_mc_6x128.safetensors") +
                            " --set 'pgnn.hidden_dims=[128,128,128,128,128,128]' --set pgnn.output=last";
  auto r = run_command(sapling::test::sapling_exe() + " prepare " + inputs + " --out " + quote(root / "observed") +
                       " --tokenizer foldseek_3di --quiet" + embed);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_command(sapling::test::sapling_exe() + " prepare " + inputs + " --out " + quote(root / "seqres") +
                  " --tokenizer foldseek_3di --sequence seqres --quiet");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  sapling::StructureDataset observed(root / "observed"), seqres(root / "seqres");
  REQUIRE(observed.size() == seqres.size());
  CHECK(observed.embedding_dim() == 128);
  int64_t gapped = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const auto a = observed.chain(i), b = seqres.chain(i);
    INFO(a.entry << " chain " << a.chain);
    REQUIRE(a.entry == b.entry);
    std::string kept;
    const auto flags = b.observed.to(torch::kBool);
    for (int64_t k = 0; k < b.length(); ++k)
      if (flags[k].item<bool>()) kept += b.sequence[static_cast<size_t>(k)];
    CHECK(a.sequence == kept);
    CHECK(a.observed.all().item<bool>());
    CHECK(observed.tokens(i).size(0) == a.length());
    CHECK(observed.embeddings(i).size(0) == a.length());
    CHECK(observed.metadata(i).length == a.length());
    gapped += b.length() > a.length();
  }
  std::cout << "observed vs SEQRES sequences: " << gapped << " of " << observed.size() << " chains have unmodelled residues\n";
  CHECK(gapped > 0);  // the sample has chains with gaps, so the two modes really differ

  // Across chain breaks the observed mode's 3Di is Foldseek's (its createdb output for the sample, bundled).
  const auto reference = src / "datasets/sample/bm5_foldseek.3di.fasta";
  std::map<std::string, std::string> foldseek_aa, foldseek_3di;
  for (const auto& [file, map] : {std::pair{reference, &foldseek_3di},
                                  std::pair{src / "datasets/sample/bm5_foldseek.aa.fasta", &foldseek_aa}}) {
    std::ifstream in(file);
    std::string name;
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] == '>') name = line.substr(1);
      else (*map)[name] += line;
  }
  const auto& symbols = observed.token_symbols();
  int64_t compared = 0, identical = 0, with_gaps = 0;
  for (size_t i = 0; i < observed.size(); ++i) {
    const auto chain = observed.chain(i);
    for (const auto& name : {chain.entry, chain.entry + "_" + chain.chain}) {
      const auto it = foldseek_aa.find(name);
      if (it == foldseek_aa.end() || it->second != chain.sequence) continue;
      const auto tokens = observed.tokens(i).to(torch::kInt64);
      std::string ours;
      for (int64_t k = 0; k < tokens.size(0); ++k) ours += symbols.at(static_cast<size_t>(tokens[k].item<int64_t>()));
      ++compared;
      identical += ours == foldseek_3di.at(name);
      with_gaps += seqres.chain(i).length() > chain.length();
      break;
    }
  }
  std::cout << "observed-mode 3Di vs Foldseek createdb: " << identical << " of " << compared << " chains identical ("
            << with_gaps << " of them with chain breaks)\n";
  REQUIRE(foldseek_3di.size() == 31);
  CHECK(compared >= static_cast<int64_t>(observed.size()) / 2);
  CHECK(with_gaps > 0);
  CHECK(identical == compared);
  fs::remove_all(root);
}

TEST_CASE("validation without selection runs no reference model, with selection it runs both",
          "[fidelity][train]") {
  const auto root = sapling::test::temp_dir("fidelity-valid");
  const std::string reference = " --set reference_model.path=" + quote(reference_run() / "best");
  auto r = run_command(method_command("saesm2_8m.toml", root / "published", "--max-steps 2" + reference));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto valid = sapling::test::read_metrics(root / "published/metrics.jsonl", "valid");
  REQUIRE(valid.size() >= 2);
  for (const auto& line : valid) {
    CHECK(line.at("selection") == false);
    CHECK(line.at("reference_passes") == 0);
    CHECK_FALSE(line.contains("kept.structure_token"));
  }
  CHECK(sapling::test::read_metrics(root / "published/metrics.jsonl", "train").back().contains("kept.structure_token"));
  r = run_command(method_command("saesm2_8m.toml", root / "selected",
                                 "--max-steps 2 --set train.valid_selection=true" + reference));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  valid = sapling::test::read_metrics(root / "selected/metrics.jsonl", "valid");
  REQUIRE(valid.size() >= 2);
  CHECK(valid.back().at("reference_passes").get<int64_t>() > 0);
  CHECK(valid.back().contains("kept.structure_token"));
  fs::remove_all(root);
}

TEST_CASE("optim.decay = all decays biases and norms too, matrices leaves them to the gradient", "[fidelity][train]") {
  const auto root = sapling::test::temp_dir("fidelity-decay");
  // One step at the peak rate: AdamW's first update is the same in both runs, so the 1-D parameters of the
  // two differ by exactly lr x weight_decay x their initial value.
  const double lr = 1e-3, decay = 0.5;
  const std::string step = "--max-steps 1 --set optim.warmup_steps=0 --set optim.schedule=constant --set optim.lr=" +
                           std::to_string(lr) + " --set optim.weight_decay=" + std::to_string(decay) +
                           " --set data.valid_split=";
  for (const char* mode : {"all", "matrices"}) {
    const auto r = run_command(method_command("reference_esm2_8m.toml", root / mode,
                                              step + " --set optim.decay=" + std::string(mode)));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  sapling::SafetensorsFile all(root / "all/final/model.safetensors"), matrices(root / "matrices/final/model.safetensors");
  sapling::SafetensorsFile base(sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16/model.safetensors");
  const std::string norm = "esm.encoder.layer.0.attention.LayerNorm.weight";
  const auto initial = base.get(norm).to(torch::kFloat64);
  const auto difference = matrices.get(norm).to(torch::kFloat64) - all.get(norm).to(torch::kFloat64);
  const double error = (difference - lr * decay * initial).abs().max().item<double>();
  std::cout << "decay = all vs matrices, one step: LayerNorm difference off lr x wd x w0 by " << error << "\n";
  CHECK(error < 1e-6);
  // The matrices decay in both runs: the same update.
  const std::string matrix = "esm.encoder.layer.0.attention.self.query.weight";
  CHECK((all.get(matrix).to(torch::kFloat64) - matrices.get(matrix).to(torch::kFloat64)).abs().max().item<double>() <
        1e-7);
  fs::remove_all(root);
}

TEST_CASE("unknown_residues = include makes <unk> a residue: maskable and scored", "[fidelity][masking]") {
  sapling::test::load_build_plugins();
  const auto model =
      sapling::load_sequence_encoder(sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16");
  const auto& tokenizer = model->tokenizer();
  const auto batch = tokenizer.batch({"MKT*LV"});  // '*' is not in ESM2's vocabulary: <unk>
  const int64_t unk = tokenizer.unk_id();
  REQUIRE(batch.ids[0][4].item<int64_t>() == unk);
  CHECK_FALSE(sapling::real_residue_mask(batch.ids, batch.mask, tokenizer)[0][4].item<bool>());
  CHECK(sapling::real_residue_mask(batch.ids, batch.mask, tokenizer, true)[0][4].item<bool>());
  CHECK(sapling::real_residue_mask(batch.ids, batch.mask, tokenizer, true).sum().item<int64_t>() == 6);
}
