// The precomputed plugin: fed the built-in outputs it reproduces them exactly (prepare and train), and every bad input is one clear error.
#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "sapling/dataset.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/npy.hpp"
#include "sapling/safetensors.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using sapling::test::run_command;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }
const fs::path& src() {
  static const fs::path dir = sapling::test::source_dir();
  return dir;
}
// The bundled sample: BM5 pairs and PSICOV targets (repository files).
std::string sample_inputs() { return q(src() / "datasets/sample/bm5") + " " + q(src() / "datasets/sample/psicov"); }
const std::string kPrepare = " --valid-fraction 0.2 --reference-fraction 0.4 --seed 6 --threads 2 --quiet";

void write_text(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

// The chains of one structure file as `sapling prepare` stores them (observed residues).
std::vector<sapling::ChainStructure> stored_chains(const fs::path& file) {
  auto chains = sapling::read_structure(file);
  for (auto& chain : chains) chain = sapling::observed_residues(chain);
  return chains;
}

// A component built the way a recipe builds it: schema defaults, then the given options.
template <typename Interface>
std::shared_ptr<Interface> make(const std::map<std::string, sapling::OptionValue>& set) {
  sapling::test::load_build_plugins();
  const auto& entry = sapling::Registry<Interface>::instance().find("precomputed");
  auto options = sapling::Options::defaults(entry.schema);
  for (const auto& [key, value] : set) options.set(key, value);
  return entry.factory(options);
}

std::string key_of(const sapling::ChainMetadata& m) { return m.entry + "_" + m.chain; }

std::vector<nlohmann::json> train_metrics(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && nlohmann::json::parse(line).at("type") == "train") out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("precomputed tokens from sapling tokens reproduce the foldseek_3di dataset exactly", "[precomputed][tokens][cli]") {
  const auto root = sapling::test::temp_dir("precomputed-tokens");
  const std::string exe = sapling::test::sapling_exe();
  // `--residues all`: every residue with a CA, the residues prepare stores (Foldseek's own view drops a
  // chain's records after its TER; those chains would be length errors, see the next check).
  auto r = run_command(exe + " tokens " + sample_inputs() + " --out " + q(root / "sample") +
                       " --tokenizer foldseek_3di --residues all --quiet");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // --min-length 4: Foldseek's rule leaves out chains of <= 3 residues (three TER parts of 3PC8_r_b-matched);
  // with the default 1 they are in prepare's data but not in the file, and --strict stops at them.
  r = run_command(exe + " prepare " + sample_inputs() + " --out " + q(root / "builtin") + kPrepare +
                  " --min-length 4 --tokenizer foldseek_3di --strict");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = run_command(exe + " prepare " + sample_inputs() + " --out " + q(root / "precomputed") + kPrepare +
                  " --min-length 4 --tokenizer precomputed --set tokenizer.file=" + q(root / "sample.3di.fasta") + " --strict");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  const sapling::StructureDataset builtin(root / "builtin"), precomputed(root / "precomputed");
  REQUIRE(builtin.size() == precomputed.size());
  CHECK(builtin.token_symbols() == precomputed.token_symbols());
  CHECK(builtin.token_mask_state() == precomputed.token_mask_state());
  CHECK(precomputed.tokenizer() == "precomputed");
  size_t identical = 0;
  int64_t residues = 0;
  for (size_t i = 0; i < builtin.size(); ++i) {
    INFO(key_of(builtin.metadata(i)));
    REQUIRE(key_of(builtin.metadata(i)) == key_of(precomputed.metadata(i)));
    const bool same = torch::equal(builtin.tokens(i), precomputed.tokens(i));
    CHECK(same);
    identical += same;
    residues += builtin.metadata(i).length;
  }
  std::cout << "precomputed tokens: " << identical << " of " << builtin.size() << " chains (" << residues
            << " residues) identical to foldseek_3di in prepare\n";
  CHECK(identical == builtin.size());

  // The shipped Foldseek-view FASTA (what Foldseek createdb itself writes for BM5) feeds the BM5 files too;
  // a chain whose Foldseek view is shorter than prepare's is a reported length error, never cut.
  r = run_command(exe + " prepare " + q(src() / "datasets/sample/bm5") + " --out " + q(root / "foldseek_view") + kPrepare +
                  " --tokenizer precomputed --set tokenizer.file=" + q(src() / "datasets/sample/bm5_foldseek.3di.fasta"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const sapling::StructureDataset foldseek_view(root / "foldseek_view");
  size_t view_identical = 0;
  for (size_t i = 0, j = 0; i < foldseek_view.size(); ++i) {
    while (j < builtin.size() && key_of(builtin.metadata(j)) != key_of(foldseek_view.metadata(i))) ++j;
    REQUIRE(j < builtin.size());
    view_identical += torch::equal(builtin.tokens(j), foldseek_view.tokens(i));
  }
  std::cout << "bm5_foldseek.3di.fasta (Foldseek's view): " << foldseek_view.size() << " BM5 chains stored, "
            << view_identical << " identical to foldseek_3di\n";
  CHECK(view_identical == foldseek_view.size());
  fs::remove_all(root);
}

TEST_CASE("precomputed embeddings written from a GearNet dataset reproduce it exactly", "[precomputed][embeddings][cli]") {
  const auto root = sapling::test::temp_dir("precomputed-embeddings");
  const std::string exe = sapling::test::sapling_exe();
  auto r = run_command(exe + " prepare " + sample_inputs() + " --out " + q(root / "gearnet") + kPrepare +
                       " --strict --pgnn gearnet --allow-random-pgnn --set 'pgnn.hidden_dims=[16,16]'");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const sapling::StructureDataset gearnet(root / "gearnet");
  std::map<std::string, int> chains_per_entry;
  for (size_t i = 0; i < gearnet.size(); ++i) ++chains_per_entry[gearnet.metadata(i).entry];

  // Every way a user may write them: ENTRY_CHAIN or ENTRY (one-chain entries), .npy or .safetensors (one
  // tensor, or "embeddings" among others), float16 or float32 (the float16 values, exactly).
  const fs::path dir = root / "files";
  fs::create_directories(dir);
  int npy = 0, safetensors = 0, entry_only = 0;
  for (size_t i = 0; i < gearnet.size(); ++i) {
    const auto& m = gearnet.metadata(i);
    const bool short_key = chains_per_entry[m.entry] == 1 && i % 2 == 0;
    const std::string key = short_key ? m.entry : key_of(m);
    entry_only += short_key;
    torch::Tensor values = gearnet.embeddings(i);
    if (i % 4 == 1) values = values.to(torch::kFloat32);
    if (i % 3 == 0) {
      sapling::NamedTensors tensors{{"embeddings", values}};
      if (i % 2 == 0) tensors.push_back({"mean", values.mean(0)});
      sapling::save_safetensors(dir / (key + ".safetensors"), tensors);
      ++safetensors;
    } else {
      sapling::save_npy(dir / (key + ".npy"), values);
      ++npy;
    }
  }
  // No weights, no --allow-random-pgnn: precomputed embeddings need neither.
  r = run_command(exe + " prepare " + sample_inputs() + " --out " + q(root / "precomputed") + kPrepare +
                  " --strict --pgnn precomputed --set pgnn.dir=" + q(dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const sapling::StructureDataset precomputed(root / "precomputed");
  REQUIRE(precomputed.size() == gearnet.size());
  REQUIRE(precomputed.embedding_dim() == gearnet.embedding_dim());
  double worst = 0;
  size_t identical = 0;
  for (size_t i = 0; i < gearnet.size(); ++i) {
    REQUIRE(key_of(gearnet.metadata(i)) == key_of(precomputed.metadata(i)));
    const auto a = gearnet.embeddings(i), b = precomputed.embeddings(i);
    REQUIRE(a.scalar_type() == torch::kFloat16);
    REQUIRE(b.scalar_type() == torch::kFloat16);
    worst = std::max(worst, (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>());
    identical += torch::equal(a, b);
  }
  std::cout << "precomputed embeddings: " << gearnet.size() << " chains (" << npy << " .npy, " << safetensors
            << " .safetensors, " << entry_only << " by ENTRY alone), dim " << gearnet.embedding_dim()
            << ", max diff to GearNet " << worst << " (tolerance 0)\n";
  CHECK(worst == 0);
  CHECK(identical == gearnet.size());
  fs::remove_all(root);
}

TEST_CASE("precomputed tokenizer: every bad token file is one error naming the chain and the file", "[precomputed][tokens][errors]") {
  const auto root = sapling::test::temp_dir("precomputed-token-errors");
  const auto chain = stored_chains(src() / "datasets/sample/bm5/1AY7_l_u.pdb.gz").at(0);
  const std::string key = chain.entry + "_" + chain.chain;
  const std::string label = chain.label();
  const int64_t L = chain.length();
  const fs::path file = root / "tokens.fasta";
  auto tokenizer = [&](std::map<std::string, sapling::OptionValue> set) {
    set["file"] = file.string();
    return make<sapling::StructureTokenizer>(set);
  };

  SECTION("a chain missing from the file") {
    write_text(file, ">other_A\nACDE\n");
    const auto t = tokenizer({});
    CHECK_THROWS_WITH(t->encode(chain), Contains(label) && Contains(file.string()) && Contains("'" + key + "'"));
  }
  SECTION("a record one token short is not cut or padded") {
    write_text(file, ">" + key + "\n" + std::string(static_cast<size_t>(L - 1), 'A') + "\n");
    CHECK_THROWS_WITH(tokenizer({})->encode(chain), Contains(file.string() + ":1:") && Contains(label) &&
                                                        Contains(std::to_string(L - 1) + " tokens") &&
                                                        Contains(std::to_string(L) + " residues"));
  }
  SECTION("a symbol outside the alphabet") {
    write_text(file, ">" + key + "\nACDZE\n");
    CHECK_THROWS_WITH(tokenizer({}), Contains(file.string() + ":2:4:") && Contains("'Z'") && Contains(key));
  }
  SECTION("a duplicate header") {
    write_text(file, ">" + key + "\nAC\n>" + key + " again\nAC\n");
    CHECK_THROWS_WITH(tokenizer({}), Contains(file.string() + ":3:") && Contains("duplicate header '" + key + "'") &&
                                         Contains("line 1"));
  }
  SECTION("a code out of range") {
    write_text(file, ">" + key + "\n0 1 511\n3 512 7\n");
    CHECK_THROWS_WITH(tokenizer({{"codes", int64_t{512}}}),
                      Contains(file.string() + ":3:3:") && Contains("code 512 is out of range") && Contains(key));
  }
  SECTION("lenient: on_missing = mask gives the mask state, 'D' for 3Di") {
    write_text(file, ">other_A\nACDE\n");
    const auto t = tokenizer({{"on_missing", std::string("mask")}});
    CHECK(t->symbol(t->mask_state()) == "D");
    CHECK(t->encode(chain) == std::vector<int64_t>(static_cast<size_t>(L), t->mask_state()));
  }
  SECTION("integer codes with an extra mask state") {
    std::string codes;
    for (int64_t i = 0; i < L; ++i) codes += std::to_string(i * 37 % 512) + (i % 20 == 19 ? "\n" : " ");
    write_text(file, ">" + chain.entry + "\n" + codes + "\n");  // ENTRY alone: a one-chain file
    const auto t = tokenizer({{"codes", int64_t{512}}});
    CHECK(t->num_states() == 513);
    CHECK(t->mask_state() == 512);
    CHECK(t->symbol(512) == "mask");
    const auto states = t->encode(chain);
    REQUIRE(states.size() == static_cast<size_t>(L));
    CHECK(states[5] == 5 * 37 % 512);
  }
  fs::remove_all(root);
}

TEST_CASE("precomputed tokenizer: an entry-only record never serves two chains", "[precomputed][tokens][errors]") {
  // The first sample file with two chains: "ENTRY" alone is for one-chain files.
  std::vector<sapling::ChainStructure> chains;
  for (const auto& item : fs::directory_iterator(src() / "datasets/sample/bm5"))
    if (chains.size() < 2) chains = stored_chains(item.path());
  REQUIRE(chains.size() >= 2);
  const auto root = sapling::test::temp_dir("precomputed-claims");
  write_text(root / "t.fasta", ">" + chains[0].entry + "\n" + std::string(static_cast<size_t>(chains[0].length()), 'A') + "\n");
  const auto t = make<sapling::StructureTokenizer>({{"file", (root / "t.fasta").string()}});
  CHECK(t->encode(chains[0]).size() == static_cast<size_t>(chains[0].length()));
  CHECK_THROWS_WITH(t->encode(chains[1]), Contains("would serve both chain " + chains[0].chain + " and chain " + chains[1].chain));
  fs::remove_all(root);
}

TEST_CASE("precomputed encoder: every bad embedding file is one error naming the chain and the file", "[precomputed][embeddings][errors]") {
  const auto root = sapling::test::temp_dir("precomputed-embedding-errors");
  const auto chain = stored_chains(src() / "datasets/sample/bm5/1AY7_l_u.pdb.gz").at(0);
  const std::string key = chain.entry + "_" + chain.chain;
  const std::string label = chain.label();
  const int64_t L = chain.length();
  // "0000.npy" sorts first: the folder's dimension (8) always comes from a good file.
  sapling::save_npy(root / "0000.npy", torch::zeros({3, 8}));
  const auto encoder = [&] { return make<sapling::StructureEncoder>({{"dir", root.string()}}); };
  const fs::path npy = root / (key + ".npy");

  SECTION("good: output_dim from the files, no weights needed") {
    sapling::save_npy(npy, torch::randn({L, 8}).to(torch::kFloat64));
    const auto e = encoder();
    CHECK(e->output_dim() == 8);
    CHECK_FALSE(e->needs_weights());
    CHECK(e->embed(chain).sizes() == torch::IntArrayRef({L, 8}));
  }
  SECTION("a missing chain") {
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(root.string()) && Contains(key + ".npy"));
  }
  SECTION("a length that disagrees with the chain's residues") {
    sapling::save_npy(npy, torch::zeros({L + 1, 8}));
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) &&
                                                   Contains(std::to_string(L + 1) + " rows") &&
                                                   Contains(std::to_string(L) + " residues"));
  }
  SECTION("NaN and inf") {
    auto values = torch::zeros({L, 8});
    values[3][5] = std::numeric_limits<float>::quiet_NaN();
    values[7][0] = std::numeric_limits<float>::infinity();
    sapling::save_npy(npy, values);
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) && Contains("row 3") &&
                                                   Contains("2 of " + std::to_string(L) + " rows"));
  }
  SECTION("a wrong rank") {
    sapling::save_npy(npy, torch::zeros({L, 2, 4}));
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) && Contains("rank 3"));
  }
  SECTION("an integer dtype, .npy and .safetensors") {
    sapling::save_npy(npy, torch::zeros({L, 8}, torch::kInt64));
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) && Contains("'<i8'"));
    fs::remove(npy);
    const fs::path st = root / (key + ".safetensors");
    sapling::save_safetensors(st, {{"x", torch::zeros({L, 8}, torch::kInt32)}});
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(st.string()) && Contains("I32"));
  }
  SECTION("a dimension other than the folder's") {
    sapling::save_npy(npy, torch::zeros({L, 4}));
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) && Contains("dimension 4") &&
                                                   Contains("0000.npy"));
  }
  SECTION("a value float16 storage cannot hold") {
    sapling::save_npy(npy, torch::full({L, 8}, 1e5));
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(label) && Contains(npy.string()) && Contains("float16"));
  }
  SECTION("a malformed .npy header: huge, overflowing or unreadable shapes") {
    const auto write_npy = [&](const std::string& shape) {
      std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
      header += std::string(63 - header.size() % 64, ' ') + "\n";
      std::ofstream out(npy, std::ios::binary);
      out << "\x93NUMPY" << '\x01' << '\x00' << char(header.size() & 0xff) << char(header.size() >> 8) << header;
    };
    write_npy("(99999999999999999999, 8)");  // std::stoll would have thrown std::out_of_range
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(npy.string()) && Contains("is too large"));
    write_npy("(100000000000000, 100000000000000)");  // the byte count overflowed 64 bits
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(npy.string()) && Contains("needs more"));
    write_npy("");  // an empty value: substr(1) would have thrown std::out_of_range
    CHECK_THROWS_WITH(encoder()->embed(chain), Contains(npy.string()) && Contains("is not a tuple"));
  }
  SECTION("a folder without embedding files") {
    fs::remove(root / "0000.npy");
    CHECK_THROWS_WITH(encoder(), Contains(root.string()) && Contains("no .npy or .safetensors"));
  }
  fs::remove_all(root);
}

TEST_CASE("prepare: a chain without precomputed outputs is reported and skipped, or stops --strict", "[precomputed][cli][errors]") {
  const auto root = sapling::test::temp_dir("precomputed-lenient");
  const std::string exe = sapling::test::sapling_exe();
  const fs::path kept = src() / "datasets/sample/bm5/1AY7_l_u.pdb.gz", lost = src() / "datasets/sample/bm5/1AY7_r_u.pdb.gz";
  const auto chain = stored_chains(kept).at(0), missing = stored_chains(lost).at(0);
  fs::create_directories(root / "emb");
  sapling::save_npy(root / "emb" / (chain.entry + ".npy"), torch::ones({chain.length(), 4}));
  write_text(root / "t.fasta", ">" + chain.entry + "\n" + std::string(static_cast<size_t>(chain.length()), 'C') + "\n");
  const std::string common = exe + " prepare " + q(kept) + " " + q(lost) + " --valid-fraction 0";  // not --quiet: the skip is a warning
  for (const std::string flags : {" --pgnn precomputed --set pgnn.dir=" + q(root / "emb"),
                                  " --tokenizer precomputed --set tokenizer.file=" + q(root / "t.fasta")}) {
    auto r = run_command(common + " --out " + q(root / "lenient") + flags);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains("skipped") && Contains(missing.entry + " chain " + missing.chain));
    CHECK(sapling::StructureDataset(root / "lenient").size() == 1);
    fs::remove_all(root / "lenient");
    r = run_command(common + " --out " + q(root / "strict") + flags + " --strict");
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Contains(missing.entry + " chain " + missing.chain));
  }
  fs::remove_all(root);
}

TEST_CASE("ablation recipes: GearNet and precomputed GearNet embeddings train to the same losses", "[precomputed][train][cli]") {
  const auto root = sapling::test::temp_dir("precomputed-train");
  const std::string exe = sapling::test::sapling_exe();
  // GearNet's side: the shared test dataset, prepared with the bundled GearNet of gearnet.toml (6 x 128,
  // concatenated), so the trainer reads the embeddings that recipe's [pgnn] makes (computing them while
  // training costs a minute here, and building GearNet draws its random initialisation from the global
  // generator, which shifts the masking of a run: see the report in docs/plugins/precomputed.md).
  const fs::path with_gearnet = sapling::test::sample_dataset();
  // The precomputed side: the same structures and splits, tokens only, and GearNet's embeddings as files.
  auto r = run_command(exe + " prepare " + sample_inputs() + " --out " + q(root / "dataset") + kPrepare +
                       " --tokenizer foldseek_3di --strict");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const sapling::StructureDataset stored(with_gearnet);
  fs::create_directories(root / "emb");
  for (size_t i = 0; i < stored.size(); ++i)
    sapling::save_npy(root / "emb" / (key_of(stored.metadata(i)) + ".npy"), stored.embeddings(i));

  std::map<std::string, std::vector<nlohmann::json>> runs;
  for (const std::string name : {"gearnet", "precomputed"}) {
    // No reference model here: the shipped recipe with every residue kept (the embeddings are what differs).
    const fs::path recipe = root / (name + ".toml");
    write_text(recipe, "base = \"" + (src() / "recipes/ablations/embeddings" / (name + ".toml")).string() +
                           "\"\n[selector]\ncomponent = \"none\"\n");
    const std::string command =
        exe + " train " + q(recipe) + " --out " + q(root / name) + " --set model.path=" +
        q(sapling::test::fixtures_dir() / "esm2_tiny") + " --set data.dataset=" +
        q(name == "gearnet" ? with_gearnet : root / "dataset") +
        (name == "precomputed" ? " --set pgnn.dir=" + q(root / "emb") : std::string()) +
        " --set train.global_batch=0 --set train.accumulate=1 --set data.max_length=96 --set data.proteins_per_batch=4"
        " --set data.batching=proteins --set train.valid_every=100 --set train.precision=fp32 --max-steps 2 --threads 2";
    r = run_command(command);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.output, Contains(name == "gearnet" ? "pGNN embeddings from the dataset (768-d)"
                                                    : "pGNN embeddings computed by precomputed (768-d)"));
    runs[name] = train_metrics(root / name);
    REQUIRE(runs[name].size() == 2);
  }
  for (size_t step = 0; step < 2; ++step) {
    const auto& a = runs["gearnet"][step];
    const auto& b = runs["precomputed"][step];
    std::cout << "step " << step + 1 << ": loss gearnet " << a.at("loss") << ", precomputed " << b.at("loss")
              << " (contrastive " << a.at("contrastive.seq_to_struct") << " / " << b.at("contrastive.seq_to_struct")
              << ")\n";
    CHECK(a.at("loss").get<double>() == b.at("loss").get<double>());
    CHECK(a.at("contrastive.seq_to_struct").get<double>() == b.at("contrastive.seq_to_struct").get<double>());
  }
  fs::remove_all(root);
}
