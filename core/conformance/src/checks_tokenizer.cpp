// Structure tokenizer checks: state ranges, lengths, symbols, determinism, threads, files, tiny chains.
#include <fstream>
#include <set>
#include <thread>

#include "checks.hpp"
#include "sapling/interfaces.hpp"

namespace sapling::conformance {

namespace tokenizer_impl {  // named, not anonymous: the unity build compiles these files as one unit

void states(Checker& c, const std::string& name, const RunContext& context) {
  const auto tokenizer = build_component<StructureTokenizer>(name, context);
  const int64_t count = tokenizer->num_states();
  c.expect(count >= 2, text("num_states() >= 2, got ", count));
  // Symbols: one printable, distinct symbol per state (the dataset stores them as the vocabulary).
  std::set<std::string> symbols;
  for (int64_t s = 0; s < count; ++s) {
    const auto symbol = tokenizer->symbol(s);
    c.expect(!symbol.empty(), text("symbol(", s, ") is not empty"));
    c.expect(symbol.find_first_of(" \t\n>") == std::string::npos, text("symbol(", s, ") has no blank or '>'"));
    symbols.insert(symbol);
  }
  c.expect(static_cast<int64_t>(symbols.size()) == count, "one distinct symbol per state");
  const int64_t mask = tokenizer->mask_state();
  for (const ChainStructure& chain : context.fixtures.chains) {
    Checker::Context in(c, text("chain ", chain.label(), " (", chain.length(), " residues)"));
    const auto first = tokenizer->encode(chain);
    if (!c.expect(static_cast<int64_t>(first.size()) == chain.length(),
                  text("one state per residue, got ", first.size())))
      continue;
    int64_t encoded = 0, out_of_range = 0;
    for (int64_t s : first) {
      out_of_range += !((s >= 0 && s < count) || s == mask);
      encoded += s != mask;
    }
    c.expect(out_of_range == 0, text(out_of_range, " states outside [0, num_states()) and not mask_state()"));
    c.expect(encoded > chain.length() / 2, text("most residues of a real structure get a state, got ", encoded));
    c.expect(tokenizer->encode(chain) == first, "deterministic");
  }
}

void threads(Checker& c, const std::string& name, const RunContext& context) {
  const auto tokenizer = build_component<StructureTokenizer>(name, context);
  if (!tokenizer->thread_safe()) {
    c.skip("thread_safe() is false");
    return;
  }
  const auto& chains = context.fixtures.chains;
  std::vector<std::vector<int64_t>> serial, parallel(chains.size());
  for (const auto& chain : chains) serial.push_back(tokenizer->encode(chain));
  std::vector<std::thread> pool;
  for (size_t k = 0; k < chains.size(); ++k) pool.emplace_back([&, k] { parallel[k] = tokenizer->encode(chains[k]); });
  for (auto& thread : pool) thread.join();
  c.expect(parallel == serial, "the same states on several threads");
}

void read_file(Checker& c, const std::string& name, const RunContext& context) {
  const auto tokenizer = build_component<StructureTokenizer>(name, context);
  const auto& file = context.fixtures.files.back();
  const TokenizerFile read = tokenizer->read_file(file);
  Checker::Context in(c, file.filename().string());
  if (!c.expect(read.names.size() == read.chains.size(), "one name per chain")) return;
  c.expect(!read.chains.empty(), "at least one chain");
  for (size_t k = 0; k < read.chains.size(); ++k) {
    c.expect(!read.names[k].empty(), "named chains");
    c.expect(static_cast<int64_t>(tokenizer->encode(read.chains[k]).size()) == read.chains[k].length(),
             "one state per residue of each chain read");
  }
  c.expect(!tokenizer->file_tag().empty(), "file_tag() is not empty");
  // An unreadable file is a reported error naming it.
  const auto bad = context.scratch / "garbage.pdb";
  { std::ofstream(bad) << "this is not a structure\n"; }
  std::string message;
  c.expect(succeeds_or_reports([&] { tokenizer->read_file(bad); }, &message),
           "a file that is not a structure is read or a sapling::Error, not: " + message);
}

void tiny_chains(Checker& c, const std::string& name, const RunContext& context) {
  const auto tokenizer = build_component<StructureTokenizer>(name, context);
  for (int64_t n : {0, 1}) {
    Checker::Context in(c, text(n, " residues"));
    const auto chain = first_residues(context.fixtures.chains.front(), n);
    std::string message;
    std::vector<int64_t> states;
    bool returned = false;
    c.expect(succeeds_or_reports(
                 [&] {
                   states = tokenizer->encode(chain);
                   returned = true;
                 },
                 &message),
             "returns or throws sapling::Error, not: " + message);
    if (returned)
      c.expect(static_cast<int64_t>(states.size()) == n, text("one state per residue, got ", states.size()));
  }
}

}  // namespace tokenizer_impl

std::vector<Check> tokenizer_checks() {
  using namespace tokenizer_impl;
  const std::string kind = StructureTokenizer::kind;
  return {{kind, "one valid state per residue, distinct symbols, deterministically", states},
          {kind, "a thread-safe tokenizer gives the same states on several threads", threads},
          {kind, "reads a structure file into named chains; a bad file is a clear error", read_file},
          {kind, "empty and one-residue chains give a result of their length or a clear error", tiny_chains}};
}

}  // namespace sapling::conformance
