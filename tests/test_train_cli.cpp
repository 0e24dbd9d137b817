// `sapling train` end to end on tiny real-format models: every recipe family, resume after SIGKILL, 2-process data parallel.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "sapling/model_loading.hpp"
#include "sapling/safetensors.hpp"
#include "metrics_support.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using sapling::test::read_metrics;
using sapling::test::run_command;

namespace {

using sapling::test::quote;

using sapling::test::sample_dataset;

// A reference recipe trained on the sample's main splits instead of its few high-quality reference chains.
const std::string kMainSplits =
    " --set data.train_split=train --set data.valid_split=valid --set data.high_quality_only=false";

// `cmd` as ranks 0 and 1 of a 2-process world on loopback (a port picked from the process id and `salt`), rank 1's
// output in root/rank1.log; the output (rank 0's) ends with "ranks=<rank 0's exit>,<rank 1's exit>".
sapling::test::CommandResult run_two_ranks(const std::string& cmd, const fs::path& root, int salt) {
  const std::string port = std::to_string(20000 + (::getpid() + salt) % 20000);
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " WORLD_SIZE=2";
  return run_command("bash -c " + quote("(RANK=1 LOCAL_RANK=1 " + env + " " + cmd + " > " + (root / "rank1.log").string() +
                                        " 2>&1 & RANK=0 LOCAL_RANK=0 " + env + " " + cmd + "; a=$?; wait $!; b=$?; echo ranks=$a,$b)"));
}

struct Family {
  std::string name, model_dir, reference_recipe, method_recipe;
};

const std::vector<Family>& families() {
  static const std::vector<Family> f{
      {"esm2", "esm2_tiny", "reference_esm2_8m.toml", "saesm2_8m.toml"},
      {"amplify", "amplify_tiny", "reference_amplify_120m.toml", "saamplify_120m.toml"}};
  return f;
}

// A recipe of recipes/ made small: tiny model, the sample dataset, short crops, no accumulation. A recipe
// without ".toml" is given by its shipped name.
std::string train_command(const std::string& recipe, const fs::path& out, const std::string& model_dir,
                          const std::string& extra = "") {
  const auto src = sapling::test::source_dir();
  const bool by_name = recipe.size() < 5 || recipe.compare(recipe.size() - 5, 5, ".toml") != 0;
  return sapling::test::sapling_exe() + " train " + (by_name ? recipe : quote(src / "recipes" / recipe)) + " --out " + quote(out) +
         " --set model.path=" + quote(sapling::test::fixtures_dir() / model_dir) +
         " --set data.dataset=" + quote(sample_dataset()) +
         " --set train.global_batch=0 --set train.accumulate=1 --set data.max_length=96 --set data.batching=tokens"
         " --set data.tokens_per_batch=512 --set train.valid_max_batches=2 --set train.valid_every=2"
         " --set train.precision=fp32 " +
         (extra.find("--threads") == std::string::npos ? "--threads 2 " : "") + extra;
}

double max_tensor_diff(const fs::path& a, const fs::path& b) {
  sapling::SafetensorsFile fa(a), fb(b);
  REQUIRE(fa.keys() == fb.keys());
  double worst = 0;
  for (const auto& key : fa.keys())
    worst = std::max(worst, (fa.get(key).to(torch::kFloat64) - fb.get(key).to(torch::kFloat64)).abs().max().item<double>());
  return worst;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Tokenises as a Hugging Face tokenizer built from `dir`'s files does for a plain residue string: each
// character looked up whole in the vocabulary (<unk> when absent), then the family's specials around it.
// ESM2 (EsmTokenizer): vocab.txt, <cls> ... <eos>. AMPLIFY (tokenizer.json): WordLevel vocab + the template.
std::vector<int64_t> hf_ids(const fs::path& dir, const std::string& sequence) {
  std::map<std::string, int64_t> vocab;
  std::vector<std::string> before, after;
  std::string unk;
  if (fs::exists(dir / "vocab.txt")) {
    std::istringstream lines(slurp(dir / "vocab.txt"));
    std::string line;
    for (int64_t id = 0; std::getline(lines, line); ++id) vocab[line] = id;
    const auto specials = json::parse(slurp(dir / "special_tokens_map.json"));
    before = {specials.at("cls_token").get<std::string>()};
    after = {specials.at("eos_token").get<std::string>()};
    unk = specials.at("unk_token").get<std::string>();
  } else {
    const auto tokenizer = json::parse(slurp(dir / "tokenizer.json"));
    for (const auto& [token, id] : tokenizer.at("model").at("vocab").items()) vocab[token] = id.get<int64_t>();
    unk = tokenizer.at("model").at("unk_token").get<std::string>();
    bool seen_sequence = false;
    for (const auto& piece : tokenizer.at("post_processor").at("single")) {
      if (piece.contains("Sequence")) seen_sequence = true;
      else (seen_sequence ? after : before).push_back(piece.at("SpecialToken").at("id").get<std::string>());
    }
  }
  std::vector<int64_t> ids;
  for (const auto& t : before) ids.push_back(vocab.at(t));
  for (char c : sequence) {
    const auto it = vocab.find(std::string(1, c));
    ids.push_back(it == vocab.end() ? vocab.at(unk) : it->second);
  }
  for (const auto& t : after) ids.push_back(vocab.at(t));
  return ids;
}

// A trained model folder carries its family's tokenizer files and a model card, and the files tokenise
// exactly as sapling does.
void check_hugging_face_files(const fs::path& dir, const std::string& family, const std::string& checkpoint, int64_t steps) {
  INFO(dir.string());
  const std::vector<std::string> files =
      family == "esm2" ? std::vector<std::string>{"vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "README.md"}
                       : std::vector<std::string>{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md"};
  for (const auto& f : files) REQUIRE(fs::exists(dir / f));
  for (const auto& e : fs::directory_iterator(dir.parent_path()))  // no temporary folder left behind
    CHECK(e.path().filename().string().rfind(".", 0) != 0);
  sapling::test::load_build_plugins();
  const auto model = sapling::load_sequence_encoder(dir);
  const auto& tokenizer = model->tokenizer();
  const auto config = json::parse(slurp(dir / "tokenizer_config.json"));
  CHECK(config.at("tokenizer_class") == (family == "esm2" ? "EsmTokenizer" : "PreTrainedTokenizerFast"));
  CHECK(config.at("model_max_length") == model->pretrained_tokens());
  CHECK(config.at("mask_token") == tokenizer.token(tokenizer.mask_id()));
  CHECK(config.at("pad_token") == tokenizer.token(tokenizer.pad_id()));
  if (family == "esm2") {
    std::vector<std::string> lines;
    std::istringstream in(slurp(dir / "vocab.txt"));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    CHECK(lines == tokenizer.vocab());
    CHECK(lines.size() == 33);
  }
  for (const std::string sequence : {"MKTAYIAKQRQISFVKSHFSRQ", "ACDEFGHIKLMNPQRSTVWY", "GSXBUZOLLAG", "M"}) {
    INFO(sequence);
    CHECK(hf_ids(dir, sequence) == tokenizer.encode(sequence));
  }
  const auto card = slurp(dir / "README.md");
  CHECK_THAT(card, Catch::Contains("license: mit") && Catch::Contains("AutoTokenizer.from_pretrained") &&
                       Catch::Contains("AutoModelForMaskedLM.from_pretrained") &&
                       Catch::Contains("| optimiser steps | " + std::to_string(steps) + " |") &&
                       Catch::Contains("(" + checkpoint + ")") && Catch::Contains("fixtures/" + family + "_tiny") &&
                       Catch::Contains("[losses.mlm]") && Catch::Contains("| loss | "));
}

}  // namespace

TEST_CASE("sapling train: reference then the full method, for ESM2 and AMPLIFY (3 steps each)", "[train][cli]") {
  for (const auto& family : families()) {
    DYNAMIC_SECTION(family.name) {
      const auto root = sapling::test::temp_dir("train-" + family.name);
      auto r = run_command(train_command(family.reference_recipe, root / "reference", family.model_dir, "--max-steps 3"));
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK(fs::exists(root / "reference/final/config.json"));
      CHECK(fs::exists(root / "reference/final/heads.safetensors"));

      r = run_command(train_command(family.method_recipe, root / "aligned", family.model_dir,
                                    "--max-steps 3 --set reference_model.path=" + quote(root / "reference/final") +
                                        " --set reference_model.component=" + family.name));
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK_THAT(r.output, Catch::Contains("trained 3 steps") && Catch::Contains("validation"));
      const auto train = read_metrics(root / "aligned/metrics.jsonl", "train");
      REQUIRE(train.size() == 3);
      for (const auto& key : {"loss", "mlm", "structure_token", "contrastive.seq_to_struct", "contrastive.struct_to_seq",
                              "kept.structure_token", "kept.contrastive.seq_to_struct", "lr", "head_lr", "grad_norm",
                              "residues_per_s", "contrastive.logit_scale"})
        CHECK(train.back().contains(key));
      // Excess-loss selection keeps int(0.8 N) of N residues per micro-batch; MLM is never selected.
      const double kept = train.back().at("kept.structure_token").get<double>();
      CHECK(kept <= 0.8);
      CHECK(kept > 0.7);
      CHECK_FALSE(train.back().contains("kept.mlm"));
      CHECK(train.back().at("contrastive.logit_scale").get<double>() == Approx(1 / 0.07).epsilon(0.05));
      CHECK(train[0].at("lr").get<double>() < train[0].at("head_lr").get<double>());
      const auto valid = read_metrics(root / "aligned/metrics.jsonl", "valid");
      CHECK(valid.size() >= 2);  // before training, and at the end
      CHECK(valid.front().at("step") == 0);
      CHECK(fs::exists(root / "aligned/final/model.safetensors"));
      CHECK(fs::exists(root / "aligned/best/heads.safetensors"));
      CHECK(fs::exists(root / "aligned/checkpoints/latest"));
      CHECK(fs::exists(root / "aligned/recipe.toml"));
      // Hugging Face users can load the folders as they are: tokenizer files and a model card.
      check_hugging_face_files(root / "aligned/final", family.name, "final", 3);
      int64_t best_step = -1;
      double best_loss = 1e300;
      for (const auto& v : valid)
        if (v.at("step").get<int64_t>() > 0 && v.at("loss").get<double>() < best_loss) {
          best_loss = v.at("loss").get<double>();
          best_step = v.at("step").get<int64_t>();
        }
      check_hugging_face_files(root / "aligned/best", family.name, "best", best_step);
      // The output loads as a model of its family (the HF layout the plugins read).
      r = run_command(sapling::test::sapling_exe() + " embed --model " + quote(root / "aligned/final") + " --fasta " +
                      quote(sapling::test::source_dir() / "datasets/sample/psicov/1kw4.fasta") + " --out " +
                      quote(root / "emb.safetensors") + " --quiet");
      INFO(r.output);
      CHECK(r.exit_code == 0);
      fs::remove_all(root);
    }
  }
}

TEST_CASE("sapling train: MLM pretraining from sequences and the ablation recipes run", "[train][cli]") {
  const auto root = sapling::test::temp_dir("train-pretrain");
  {
    std::ofstream fasta(root / "seqs.fasta");
    for (const auto& e : fs::directory_iterator(sapling::test::source_dir() / "datasets/sample/psicov"))
      if (e.path().extension() == ".fasta") fasta << std::ifstream(e.path()).rdbuf() << "\n";
  }
  auto r = run_command(sapling::test::sapling_exe() + " train " + quote(sapling::test::source_dir() / "recipes/pretrain_esm2_8m.toml") +
                       " --out " + quote(root / "pretrain") + " --set data.sequences=" + quote(root / "seqs.fasta") +
                       " --set data.valid_fraction=0.3 --set data.tokens_per_batch=1024 --set train.valid_max_batches=1"
                       " --set train.precision=fp32 --max-steps 3 --threads 2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto train = read_metrics(root / "pretrain/metrics.jsonl", "train");
  REQUIRE(train.size() == 3);
  CHECK(train.back().contains("mlm"));
  CHECK_FALSE(train.back().contains("structure_token"));

  for (const std::string ablation : {"own_loss_largest", "mlm_only"}) {
    // mlm_only by its shipped name, as `sapling train ablations/mlm_only` (no such file in the working folder).
    const auto recipe = "ablations/" + ablation + (ablation == "mlm_only" ? "" : ".toml");
    r = run_command(train_command(recipe, root / ablation, "esm2_tiny", "--max-steps 2"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    train = read_metrics(root / ablation / "metrics.jsonl", "train");
    REQUIRE(train.size() == 2);
    if (ablation == "own_loss_largest") CHECK(train.back().at("kept.structure_token").get<double>() <= 0.8);
    if (ablation == "mlm_only") CHECK_FALSE(train.back().contains("kept.structure_token"));  // selector "none"
  }
  fs::remove_all(root);
}

TEST_CASE("sapling train refuses bad setups before any work", "[train][cli]") {
  const auto root = sapling::test::temp_dir("train-errors");
  // excess_loss without a reference folder.
  auto r = run_command(train_command("saesm2_8m.toml", root / "a", "esm2_tiny",
                                     "--set reference_model.path=" + quote(root / "missing")));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("reference_model"));
  // A dataset that does not exist.
  r = run_command(train_command("reference_esm2_8m.toml", root / "b", "esm2_tiny",
                                "--set data.dataset=" + quote(root / "nowhere")));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("nowhere") && Catch::Contains("sapling prepare"));
  // A finished run is not overwritten without --resume.
  r = run_command(train_command("reference_esm2_8m.toml", root / "c", "esm2_tiny", "--max-steps 1"));
  REQUIRE(r.exit_code == 0);
  r = run_command(train_command("reference_esm2_8m.toml", root / "c", "esm2_tiny", "--max-steps 1"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--resume"));
  fs::remove_all(root);
}

TEST_CASE("sapling train: SIGKILL at random points, then --resume, reproduces the uninterrupted run", "[train][cli][resume]") {
  const auto root = sapling::test::temp_dir("train-resume");
  const std::string common = "--max-steps 12 --set train.checkpoint_every=3 --set train.valid_every=4";
  auto r = run_command(train_command("reference_esm2_8m.toml", root / "straight", "esm2_tiny", common));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto expected = read_metrics(root / "straight/metrics.jsonl", "train");
  REQUIRE(expected.size() == 12);

  // Killed three times at random points, resumed each time: after a random number of logged steps in
  // 1-3, 4-6 and 7-9, plus a random 0-40 ms (a step takes about 50 ms here), so a kill can land in a
  // forward pass, a validation, or halfway through writing a checkpoint (every 3 steps) or the best model.
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  INFO("kill points from seed " << seed);
  const auto cmd = train_command("reference_esm2_8m.toml", root / "killed", "esm2_tiny", common);
  for (int first : {1, 4, 7}) {
    const int stop_at = std::uniform_int_distribution<int>(first, first + 2)(rng);
    const int delay_ms = std::uniform_int_distribution<int>(0, 40)(rng);
    std::cout << "SIGKILL after " << stop_at << " logged steps + " << delay_ms << " ms (seed " << seed << ")\n";
    // Start, wait until `stop_at` steps are logged, SIGKILL (a script file: the command holds quotes).
    const auto script = root / "kill.sh";
    std::ofstream(script) << cmd << (first == 1 ? "" : " --resume") << " > " << quote(root / "log.txt")
                          << " 2>&1 &\npid=$!\nwhile kill -0 $pid 2>/dev/null; do\n  n=$(grep -c '\"type\":\"train\"' "
                          << quote(root / "killed/metrics.jsonl") << " 2>/dev/null || true)\n  if [ \"${n:-0}\" -ge "
                          << stop_at << " ]; then sleep " << delay_ms / 1000.0 << "; kill -9 $pid; break; fi\n"
                          << "  sleep 0.01\ndone\nwait $pid\necho exit=$?\n";
    r = run_command("bash " + quote(script));
    INFO(r.output);
    CHECK_THAT(r.output, Catch::Contains("exit=137"));
  }
  r = run_command(cmd + " --resume");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("resumed at step"));
  const auto resumed = read_metrics(root / "killed/metrics.jsonl", "train");
  REQUIRE(resumed.size() == 12);  // the log was cut back to each checkpoint: no step twice
  double worst = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(resumed[i].at("step") == expected[i].at("step"));
    for (const auto& key : {"loss", "mlm", "structure_token", "grad_norm", "lr"})
      worst = std::max(worst, std::abs(resumed[i].at(key).get<double>() - expected[i].at(key).get<double>()));
  }
  const double weights = max_tensor_diff(root / "straight/final/model.safetensors", root / "killed/final/model.safetensors");
  std::cout << "resume after SIGKILL x3: max loss-trajectory diff " << worst << ", max weight diff " << weights << "\n";
  CHECK(worst <= 1e-6);
  CHECK(weights <= 1e-6);
  fs::remove_all(root);
}

TEST_CASE("sapling train: an output folder it cannot write, or too little free space, fails before training", "[train][cli][reliability]") {
  const auto root = sapling::test::temp_dir("train-unwritable");
  // A folder under a regular file cannot be created, also for root (which permission bits do not stop).
  std::ofstream(root / "a_file") << "not a folder\n";
  auto r = run_command(train_command("reference_esm2_8m.toml", root / "a_file" / "run", "esm2_tiny", "--max-steps 2"));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains((root / "a_file" / "run").string() + ": cannot create output folder"));
  CHECK_THAT(r.output, !Catch::Contains("step 1"));

  // Checkpoints that cannot fit on the disk: refused at the start, naming the setting to lower.
  r = run_command(train_command("reference_esm2_8m.toml", root / "run", "esm2_tiny",
                                "--max-steps 2 --set train.keep_checkpoints=1000000000000"));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("MiB free but checkpoints need about") && Catch::Contains("keep_checkpoints"));
  CHECK_FALSE(fs::exists(root / "run" / "metrics.jsonl"));
  fs::remove_all(root);
}

TEST_CASE("sapling train: a checkpoint write that fails mid-run is one error, leaves nothing half-written, and --resume recovers",
          "[train][cli][reliability]") {
  const auto root = sapling::test::temp_dir("train-write-fails");
  const auto cmd = train_command("reference_esm2_8m.toml", root / "run", "esm2_tiny",
                                 "--max-steps 6 --set train.checkpoint_every=3");
  // A 256 KiB file-size limit: recipe.toml and metrics.jsonl fit, weights (~1 MB) do not, so the first of
  // them, the best model after the validation at step 2, fails with EFBIG as it would with ENOSPC.
  const auto script = root / "limited.sh";
  std::ofstream(script) << "ulimit -f 256\nexec " << cmd << "\n";
  auto r = run_command("bash " + quote(script));
  INFO(r.output);
  CHECK(r.exit_code == 1);  // an error, not SIGXFSZ (153) or another signal
  CHECK_THAT(r.output, Catch::Contains("error: ") && Catch::Contains("File too large"));
  CHECK_THAT(r.output, Catch::Contains("/run/.best.tmp"));
  CHECK(read_metrics(root / "run/metrics.jsonl", "train").size() == 2);
  // Nothing half-written is left: no temporary file or folder, no best model, no checkpoint.
  for (const auto& entry : fs::recursive_directory_iterator(root / "run"))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  CHECK_FALSE(fs::exists(root / "run/best"));
  if (fs::exists(root / "run/checkpoints")) CHECK(fs::is_empty(root / "run/checkpoints"));

  r = run_command(cmd + " --resume");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(read_metrics(root / "run/metrics.jsonl", "train").size() == 6);
  CHECK(fs::exists(root / "run/final/model.safetensors"));
  fs::remove_all(root);
}

TEST_CASE("sapling train: 2 processes (Gloo, loopback) equal 1 process on the same global batch", "[train][cli][distributed]") {
  const auto root = sapling::test::temp_dir("train-ddp");
  // The main splits (the reference splits hold too few high-quality chains for 2 x 2 micro-batches a step).
  const std::string common = "--max-steps 3 --set train.valid_every=0 --threads 1" + kMainSplits;
  auto r = run_command(train_command("reference_esm2_8m.toml", root / "single", "esm2_tiny",
                                     common + " --set train.accumulate=2"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_two_ranks(train_command("reference_esm2_8m.toml", root / "ddp", "esm2_tiny", common), root, 0);
  INFO(r.output);
  REQUIRE_THAT(r.output, Catch::Contains("ranks=0,0"));
  const double model = max_tensor_diff(root / "single/final/model.safetensors", root / "ddp/final/model.safetensors");
  const double heads = max_tensor_diff(root / "single/final/heads.safetensors", root / "ddp/final/heads.safetensors");
  std::cout << "2-process vs 1-process after 3 steps: max weight diff " << model << ", heads " << heads << "\n";
  CHECK(model < 1e-5);
  CHECK(heads < 1e-5);
  fs::remove_all(root);
}

TEST_CASE("sapling train: when one data-parallel worker dies, the other fails within the timeout", "[train][cli][distributed]") {
  const auto root = sapling::test::temp_dir("train-ddp-dead");
  const std::string port = std::to_string(20000 + (::getpid() + 7) % 20000);
  const auto cmd = train_command("reference_esm2_8m.toml", root / "ddp", "esm2_tiny",
                                 "--max-steps 500 --set train.valid_every=0 --set train.distributed_timeout=30 --threads 1" +
                                     kMainSplits);
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " WORLD_SIZE=2";
  const auto script = root / "dead.sh";
  std::ofstream(script) << "RANK=1 " << env << " " << cmd << " > /dev/null 2>&1 &\nworker=$!\n"
                        << "RANK=0 " << env << " " << cmd << " > " << quote(root / "rank0.log") << " 2>&1 &\nmain=$!\n"
                        << "while [ ! -s " << quote(root / "ddp/metrics.jsonl") << " ]; do sleep 0.05; done\n"
                        << "kill -9 $worker\nstart=$(date +%s)\nwait $main\necho main_exit=$? seconds=$(( $(date +%s) - start ))\n";
  const auto r = run_command("timeout 120 bash " + quote(script));
  INFO(r.output);
  std::ifstream log(root / "rank0.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  INFO(text);
  CHECK_THAT(r.output, Catch::Contains("main_exit=1"));
  CHECK_THAT(text, Catch::Contains("rank 0") && Catch::Contains("peer died"));
  fs::remove_all(root);
}

// One micro-batch of the bundled 8M model through `sapling train --inspect-batch`, in float32 and in `precision`:
// the normalised totals' relative difference and the gradients' cosine (printed), and the `precision` dump.
struct PrecisionComparison {
  double relative = 0, cosine = 0, total = 0;
  std::unique_ptr<sapling::SafetensorsFile> dump;
};
PrecisionComparison inspect_against_fp32(const std::string& precision, const fs::path& root) {
  const auto model = sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16";
  std::map<std::string, sapling::SafetensorsFile> runs;
  for (const std::string run : {std::string("fp32"), precision}) {
    const auto file = root / (run + ".safetensors");
    const auto r = run_command(sapling::test::small_train_command(
        "reference_esm2_8m.toml", model, root / "unused",
        // Packed batching: --inspect-batch then also writes the micro-batch's gradients.
        "--set data.batching=packed --set train.precision=" + run + " --inspect-batch " + quote(file)));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    runs.emplace(run, sapling::SafetensorsFile(file));
  }
  const auto& fp32 = runs.at("fp32");
  const auto& other = runs.at(precision);
  PrecisionComparison out;
  const double total32 = fp32.get("total").item<double>();
  out.total = other.get("total").item<double>();
  std::vector<torch::Tensor> g32, g;
  for (const auto& name : fp32.keys())
    if (name.rfind("grad.", 0) == 0) {
      g32.push_back(fp32.get(name).flatten().to(torch::kFloat64));
      g.push_back(other.get(name).flatten().to(torch::kFloat64));
    }
  REQUIRE(g32.size() > 10);
  const auto a = torch::cat(g32), b = torch::cat(g);
  CHECK(b.isfinite().all().item<bool>());
  out.cosine = (a.dot(b) / (a.norm() * b.norm())).item<double>();
  out.relative = std::abs(out.total - total32) / std::abs(total32);
  std::cout << "train " << precision << " vs float32, one micro-batch: total " << out.total << " vs " << total32
            << " (relative " << out.relative << "), gradient cosine " << out.cosine << " over " << g32.size() << " tensors\n";
  out.dump = std::make_unique<sapling::SafetensorsFile>(root / (precision + ".safetensors"));
  return out;
}

// Issue #19 on the CPU: `[train] precision = "bf16"` runs the step under CPU autocast (matrix products in bf16,
// weights, norms, softmax and losses float32). One micro-batch of the bundled 8M model, both ways: the
// normalised total and the gradient direction agree within the budget. (The 200-step validation-loss check
// is a benchmark: docs/performance.md.)
TEST_CASE("sapling train: precision bf16 on the CPU keeps the float32 losses and gradients", "[train][cli][dtype]") {
  const auto root = sapling::test::temp_dir("train-bf16");
  const auto against = inspect_against_fp32("bf16", root);
  CHECK(against.relative < 0.01);
  CHECK(against.cosine > 0.99);
  fs::remove_all(root);
}

// Issue #28: a recipe states the global batch (proteins per optimiser step) and each process derives its accumulation
// from WORLD_SIZE, so one recipe trains with the same step batch on 1 and on N processes.
TEST_CASE("sapling train: [train] global_batch is the same step batch on 1 and 2 processes, and a world size that does "
          "not divide it is refused with the numbers",
          "[train][cli][distributed]") {
  const auto root = sapling::test::temp_dir("train-global-batch");
  // 8 proteins per step: 2 micro-batches of 4 on one process, 1 on each of two.
  const std::string common = "--max-steps 3 --set train.valid_every=0 --threads 1" + kMainSplits +
                             " --set data.batching=proteins --set data.proteins_per_batch=4";
  const auto command = [&](const std::string& run, const std::string& extra) {
    // train_command sets accumulate for the shared tests; here global_batch alone sets the step batch.
    auto cmd = train_command("reference_esm2_8m.toml", root / run, "esm2_tiny", common + " " + extra);
    const std::string explicit_accumulate = " --set train.global_batch=0 --set train.accumulate=1";
    cmd.replace(cmd.find(explicit_accumulate), explicit_accumulate.size(), "");
    return cmd;
  };
  auto r = run_command(command("single", "--set train.global_batch=8"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("step batch: 2 micro-batch(es) per process x 1 process(es) (gloo) x 4 proteins = "
                                       "8 proteins per optimiser step ([train] global_batch)"));
  r = run_two_ranks(command("ddp", "--set train.global_batch=8"), root, 13);
  INFO(r.output);
  REQUIRE_THAT(r.output, Catch::Contains("ranks=0,0"));
  CHECK_THAT(r.output, Catch::Contains("step batch: 1 micro-batch(es) per process x 2 process(es) (gloo) x 4 proteins = "
                                       "8 proteins per optimiser step"));
  const double model = max_tensor_diff(root / "single/final/model.safetensors", root / "ddp/final/model.safetensors");
  std::cout << "global_batch = 8 on 2 processes vs 1 process after 3 steps: max weight diff " << model << "\n";
  CHECK(model < 1e-5);

  // 8 proteins over 3 processes of 4 each: refused before any process group is formed (no peer is started).
  r = run_command("RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 " +
                  command("three", "--set train.global_batch=8"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("[train] global_batch = 8 is not a multiple of proteins_per_batch (4) x "
                                       "WORLD_SIZE (3) = 12"));
  // Both knobs set: one error naming both, and the way out.
  r = run_command(command("both", "--set train.global_batch=8 --set train.accumulate=2"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("global_batch = 8 and accumulate = 2") &&
                           Catch::Contains("--set train.global_batch=0"));
  // Tokens batching has no protein count per micro-batch.
  r = run_command(command("tokens", "--set train.global_batch=8 --set data.batching=tokens"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("global_batch counts proteins, which needs [data] batching = \"proteins\""));
  fs::remove_all(root);
}

// NCCL data parallel: one process per GPU, cuda:LOCAL_RANK, gradients reduced on the GPUs. Needs 2 or more GPUs; says
// so and stops without them (CI has none; scripts/gpu_campaign.sh and docs/gpu/README.md say where it runs).
TEST_CASE("sapling train: 2 processes on 2 GPUs (NCCL) equal 1 process on the same global batch", "[train][cli][distributed][nccl]") {
  if (!torch::cuda::is_available() || torch::cuda::device_count() < 2) {
    SAPLING_SKIP("needs 2 CUDA devices, this machine has " << (torch::cuda::is_available() ? torch::cuda::device_count() : 0));
  }
  const auto root = sapling::test::temp_dir("train-nccl");
  const std::string common = "--max-steps 3 --set train.valid_every=0 --set train.device=cuda --set train.backend=nccl" + kMainSplits;
  auto r = run_command(train_command("reference_esm2_8m.toml", root / "single", "esm2_tiny", common + " --set train.accumulate=2"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_two_ranks(train_command("reference_esm2_8m.toml", root / "ddp", "esm2_tiny", common), root, 29);
  INFO(r.output);
  REQUIRE_THAT(r.output, Catch::Contains("ranks=0,0"));
  CHECK_THAT(r.output, Catch::Contains("(nccl)"));
  const double model = max_tensor_diff(root / "single/final/model.safetensors", root / "ddp/final/model.safetensors");
  std::cout << "NCCL 2-process vs 1-process after 3 steps: max weight diff " << model << "\n";
  CHECK(model < 1e-4);  // GPU reductions are not bitwise reproducible across world sizes
  fs::remove_all(root);
}

TEST_CASE("sapling train: [train] backend and device are checked against the machine before anything runs", "[train][cli][distributed]") {
  const auto root = sapling::test::temp_dir("train-backend");
  auto r = run_command(train_command("reference_esm2_8m.toml", root / "nccl", "esm2_tiny",
                                     "--max-steps 1 --set train.device=cpu --set train.backend=nccl"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("[train] backend = \"nccl\" needs a CUDA device, but the run's device is cpu"));
  if (!torch::cuda::is_available()) {
    r = run_command(train_command("reference_esm2_8m.toml", root / "cuda", "esm2_tiny", "--max-steps 1 --set train.device=cuda:1"));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("[train] device = \"cuda:1\" but no CUDA device is available"));
  }
  r = run_command(train_command("reference_esm2_8m.toml", root / "typo", "esm2_tiny", "--max-steps 1 --set train.device=gpu"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("[train] device = \"gpu\""));
  fs::remove_all(root);
}

// Issue #28: precision = "bf16-pure" holds the trainee, its heads and the reference in bf16 (the official DeepSpeed
// bf16), with float32 master weights in the optimiser. On the CPU: the step runs, its losses are finite and near
// float32's, its gradient points the same way, and two optimiser steps leave finite bf16 weights.
TEST_CASE("sapling train: precision bf16-pure runs in bf16 with finite losses near float32's", "[train][cli][dtype]") {
  const auto root = sapling::test::temp_dir("train-bf16-pure");
  const auto against = inspect_against_fp32("bf16-pure", root);
  CHECK(against.dump->get("model.logits").scalar_type() == torch::kFloat32);  // recorded as float32 copies
  CHECK(std::isfinite(against.total));
  CHECK(against.relative < 0.05);
  CHECK(against.cosine > 0.95);

  const auto model = sapling::test::source_dir() / "datasets/models/esm2_t6_8M_uniprot_f16";
  const auto r = run_command(sapling::test::small_train_command("reference_esm2_8m.toml", model, root / "run",
                                                                "--max-steps 2 --set train.precision=bf16-pure"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("bf16-pure"));
  for (const auto& line : read_metrics(root / "run/metrics.jsonl", "train")) CHECK(std::isfinite(line.at("loss").get<double>()));
  sapling::SafetensorsFile optimizer(root / "run/checkpoints/step-00000002/optimizer.safetensors");
  bool has_master = false;
  for (const auto& key : optimizer.keys())
    if (key.rfind("master.", 0) == 0) {
      has_master = true;
      CHECK(optimizer.get(key).scalar_type() == torch::kFloat32);
    }
  CHECK(has_master);
  fs::remove_all(root);
}
