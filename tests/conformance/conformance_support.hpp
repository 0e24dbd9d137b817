// Shared pieces of the conformance suites: real sample chains, and how to build each registered component for a check.
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sapling/interfaces.hpp"
#include "sapling/structure_io.hpp"
#include "test_support.hpp"

namespace sapling::test {

// Three real chains of the bundled sample (observed residues, the view `prepare` stores): a small BM5 ligand,
// a PSICOV domain and a BM5 receptor chain with gaps, so lengths and missing-residue handling differ.
inline const std::vector<ChainStructure>& conformance_chains() {
  static const std::vector<ChainStructure> chains = [] {
    std::vector<ChainStructure> out;
    const auto sample = source_dir() / "datasets/sample";
    for (const auto& file : {sample / "bm5/1AY7_l_u.pdb.gz", sample / "psicov/1aba.pdb.gz", sample / "bm5/1AY7_r_u.pdb.gz"})
      if (std::filesystem::exists(file)) out.push_back(observed_residues(read_structure(file).front()));
    if (out.size() < 2) throw std::runtime_error("conformance: the bundled sample structures are missing");
    return out;
  }();
  return chains;
}

// A chain cut to its first `n` residues (0 gives the empty chain).
inline ChainStructure first_residues(const ChainStructure& chain, int64_t n) {
  ChainStructure out = chain;
  out.sequence = chain.sequence.substr(0, static_cast<size_t>(n));
  out.coords = chain.coords.slice(0, 0, n).clone();
  out.observed = chain.observed.slice(0, 0, n).clone();
  if (chain.bfactor.defined()) out.bfactor = chain.bfactor.slice(0, 0, n).clone();
  return out;
}

// Every chain of the conformance files, as the default StructureTokenizer::read_file and `prepare` see them
// (observed residues), for components that read per-chain inputs from files (the `precomputed` plugin).
inline std::vector<ChainStructure> conformance_file_chains() {
  std::vector<ChainStructure> out;
  const auto sample = source_dir() / "datasets/sample";
  for (const auto& file : {sample / "bm5/1AY7_l_u.pdb.gz", sample / "psicov/1aba.pdb.gz", sample / "bm5/1AY7_r_u.pdb.gz"})
    for (const auto& chain : read_structure(file)) out.push_back(observed_residues(chain));
  return out;
}

// Components whose defaults cannot build them (they need a model folder or input files) get their options
// here, from the repository's fixtures or from files written into `scratch`. A new plugin whose defaults build
// needs nothing; one that needs inputs adds its entry, and until it does the suite fails naming it.
using OptionsMaker = std::function<Options(const OptionSchema&, const std::filesystem::path& scratch)>;

inline Options with(const OptionSchema& schema, const std::map<std::string, OptionValue>& values) {
  Options options = Options::defaults(schema);
  for (const auto& [key, value] : values) options.set(key, value);
  return options;
}

// Builds `name` from `registry`: the maker in `known` when there is one, else the defaults. A failure fails the
// test with the component's name and what to do.
template <typename Interface>
std::shared_ptr<Interface> build_for_conformance(const std::string& name, const std::map<std::string, OptionsMaker>& known,
                                                 const std::filesystem::path& scratch) {
  const auto& entry = Registry<Interface>::instance().find(name);
  INFO(Interface::kind << " '" << name << "' (plugin " << entry.plugin << ")");
  std::shared_ptr<Interface> built;
  try {
    auto it = known.find(name);
    built = entry.factory(it != known.end() ? it->second(entry.schema, scratch) : Options::defaults(entry.schema));
  } catch (const std::exception& e) {
    FAIL("cannot build " << Interface::kind << " '" << name << "' for the conformance checks: " << e.what()
                         << "\n(a component that needs inputs gets its options in the `known` table of its "
                            "tests/conformance/test_*.cpp)");
  }
  REQUIRE(built);
  return built;
}

// True when `f` either succeeds or throws sapling::Error (a clear, reported error), never another exception.
template <typename F>
bool succeeds_or_reports(F&& f, std::string* message = nullptr) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    if (message) *message = e.what();
    return true;
  } catch (const std::exception& e) {
    if (message) *message = e.what();
    return false;
  }
}

}  // namespace sapling::test
