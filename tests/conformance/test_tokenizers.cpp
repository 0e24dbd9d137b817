// Conformance of every registered structure tokenizer: state ranges, lengths, symbols, determinism, threads, files, tiny chains.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "conformance_support.hpp"
#include "sapling/interfaces.hpp"

namespace {

using sapling::ChainStructure;
using sapling::StructureTokenizer;
namespace t = sapling::test;

// Tokenizers that need inputs: see conformance_support.hpp.
// `precomputed` reads a token file: the built-in 3Di tokens of every conformance chain, written as the plugin
// expects them (ENTRY_CHAIN headers). `vq_structure` without trained weights encodes with its random codebook.
const std::map<std::string, t::OptionsMaker>& known_tokenizers() {
  static const std::map<std::string, t::OptionsMaker> makers = {
      {"precomputed",
       [](const sapling::OptionSchema& schema, const std::filesystem::path& scratch) {
         const auto& three_di = sapling::StructureTokenizerRegistry::instance().find("foldseek_3di");
         const auto tokenizer = three_di.factory(sapling::Options::defaults(three_di.schema));
         const auto file = scratch / "tokens.3di.fasta";
         std::ofstream out(file);
         for (const auto& chain : t::conformance_file_chains()) {
           out << '>' << chain.entry << '_' << chain.chain << '\n';
           for (int64_t state : tokenizer->encode(chain)) out << tokenizer->symbol(state);
           out << '\n';
         }
         return t::with(schema, {{"file", file.string()}});
       }},
      {"vq_structure", [](const sapling::OptionSchema& schema, const std::filesystem::path&) {
         return t::with(schema, {{"allow_untrained", true}, {"codebook_size", int64_t{64}}});
       }}};
  return makers;
}

std::shared_ptr<StructureTokenizer> build_tokenizer(const std::string& name) {
  return t::build_for_conformance<StructureTokenizer>(name, known_tokenizers(), t::temp_dir("conformance-tokenizer-" + name));
}

}  // namespace

TEST_CASE("conformance: every tokenizer gives one valid state per residue, deterministically", "[conformance]") {
  t::load_build_plugins();
  const auto names = sapling::StructureTokenizerRegistry::instance().names();
  REQUIRE_FALSE(names.empty());
  for (const auto& name : names) {
    INFO("structure_tokenizer '" << name << "'");
    const auto tokenizer = build_tokenizer(name);
    const int64_t states = tokenizer->num_states();
    CHECK(states >= 2);
    // Symbols: one printable, distinct symbol per state (the dataset stores them as the vocabulary).
    std::set<std::string> symbols;
    for (int64_t s = 0; s < states; ++s) {
      const auto symbol = tokenizer->symbol(s);
      CHECK_FALSE(symbol.empty());
      CHECK(symbol.find_first_of(" \t\n>") == std::string::npos);
      symbols.insert(symbol);
    }
    CHECK(static_cast<int64_t>(symbols.size()) == states);
    const int64_t mask = tokenizer->mask_state();
    for (const ChainStructure& chain : t::conformance_chains()) {
      INFO("chain " << chain.entry << " " << chain.chain << " (" << chain.length() << " residues)");
      const auto first = tokenizer->encode(chain);
      REQUIRE(static_cast<int64_t>(first.size()) == chain.length());
      int64_t encoded = 0;
      for (int64_t s : first) {
        CHECK(((s >= 0 && s < states) || s == mask));
        encoded += s != mask;
      }
      CHECK(encoded > chain.length() / 2);  // real structures: most residues get a state
      CHECK(tokenizer->encode(chain) == first);  // deterministic
    }
  }
}

TEST_CASE("conformance: a thread-safe tokenizer gives the same states on several threads", "[conformance]") {
  t::load_build_plugins();
  for (const auto& name : sapling::StructureTokenizerRegistry::instance().names()) {
    INFO("structure_tokenizer '" << name << "'");
    const auto tokenizer = build_tokenizer(name);
    if (!tokenizer->thread_safe()) continue;
    const auto& chains = t::conformance_chains();
    std::vector<std::vector<int64_t>> serial, parallel(chains.size());
    for (const auto& chain : chains) serial.push_back(tokenizer->encode(chain));
    std::vector<std::thread> pool;
    for (size_t k = 0; k < chains.size(); ++k)
      pool.emplace_back([&, k] { parallel[k] = tokenizer->encode(chains[k]); });
    for (auto& thread : pool) thread.join();
    CHECK(parallel == serial);
  }
}

TEST_CASE("conformance: every tokenizer reads a structure file into named chains", "[conformance]") {
  t::load_build_plugins();
  const auto file = t::source_dir() / "datasets/sample/bm5/1AY7_r_u.pdb.gz";
  for (const auto& name : sapling::StructureTokenizerRegistry::instance().names()) {
    INFO("structure_tokenizer '" << name << "'");
    const auto tokenizer = build_tokenizer(name);
    const sapling::TokenizerFile read = tokenizer->read_file(file);
    REQUIRE(read.names.size() == read.chains.size());
    REQUIRE_FALSE(read.chains.empty());
    for (size_t c = 0; c < read.chains.size(); ++c) {
      CHECK_FALSE(read.names[c].empty());
      CHECK(static_cast<int64_t>(tokenizer->encode(read.chains[c]).size()) == read.chains[c].length());
    }
    CHECK_FALSE(tokenizer->file_tag().empty());
    // An unreadable file is a reported error naming it.
    const auto bad = t::temp_dir("conformance-tokenizer-file-" + name) / "garbage.pdb";
    { std::ofstream(bad) << "this is not a structure\n"; }
    std::string message;
    CHECK(t::succeeds_or_reports([&] { tokenizer->read_file(bad); }, &message));
  }
}

TEST_CASE("conformance: empty and one-residue chains give a result of their length or a clear error", "[conformance]") {
  t::load_build_plugins();
  for (const auto& name : sapling::StructureTokenizerRegistry::instance().names()) {
    INFO("structure_tokenizer '" << name << "'");
    const auto tokenizer = build_tokenizer(name);
    for (int64_t n : {0, 1}) {
      const auto chain = t::first_residues(t::conformance_chains().front(), n);
      std::string message;
      std::vector<int64_t> states;
      bool returned = false;
      CHECK(t::succeeds_or_reports(
          [&] {
            states = tokenizer->encode(chain);
            returned = true;
          },
          &message));
      INFO(n << " residues: " << (returned ? "returned" : "error: " + message));
      if (returned) CHECK(static_cast<int64_t>(states.size()) == n);
    }
  }
}
