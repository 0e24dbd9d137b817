// Conformance of every registered structure encoder (pGNN): shapes, zero rows without a CA, determinism, weights, tiny chains.
#include <catch2/catch.hpp>

#include "conformance_support.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/npy.hpp"

namespace {

using sapling::ChainStructure;
using sapling::StructureEncoder;
namespace t = sapling::test;

// Encoders that need inputs: see conformance_support.hpp. GearNet runs small (2 x 16) to keep the suite fast.
const std::map<std::string, t::OptionsMaker>& known_structure_encoders() {
  static const std::map<std::string, t::OptionsMaker> makers = {
      {"gearnet", [](const sapling::OptionSchema& schema, const std::filesystem::path&) {
         return t::with(schema, {{"hidden_dims", std::vector<int64_t>{16, 16}}});
       }},
      // `precomputed` reads a folder of per-chain files: seeded random embeddings of every conformance chain.
      {"precomputed", [](const sapling::OptionSchema& schema, const std::filesystem::path& scratch) {
         torch::manual_seed(5);
         for (const auto& chain : t::conformance_file_chains())
           sapling::save_npy(scratch / (chain.entry + "_" + chain.chain + ".npy"), torch::randn({chain.length(), 8}));
         return t::with(schema, {{"dir", scratch.string()}});
       }}};
  return makers;
}

std::shared_ptr<StructureEncoder> build_structure_encoder(const std::string& name) {
  auto encoder = t::build_for_conformance<StructureEncoder>(name, known_structure_encoders(),
                                                           t::temp_dir("conformance-pgnn-" + name));
  encoder->eval();
  return encoder;
}

}  // namespace

TEST_CASE("conformance: every structure encoder embeds a chain as [L, output_dim], deterministically", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  const auto names = sapling::StructureEncoderRegistry::instance().names();
  REQUIRE_FALSE(names.empty());
  for (const auto& name : names) {
    INFO("structure_encoder '" << name << "'");
    torch::manual_seed(0);
    const auto encoder = build_structure_encoder(name);
    CHECK(encoder->output_dim() > 0);
    for (const ChainStructure& chain : t::conformance_chains()) {
      INFO("chain " << chain.entry << " " << chain.chain << " (" << chain.length() << " residues)");
      const auto first = encoder->embed(chain);
      REQUIRE(first.dim() == 2);
      CHECK(first.size(0) == chain.length());
      CHECK(first.size(1) == encoder->output_dim());
      CHECK(torch::isfinite(first).all().item<bool>());
      const auto second = encoder->embed(chain);
      CHECK(torch::equal(first, second));
    }
  }
}

TEST_CASE("conformance: residues without a CA get zero rows", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::StructureEncoderRegistry::instance().names()) {
    INFO("structure_encoder '" << name << "'");
    const auto encoder = build_structure_encoder(name);
    ChainStructure chain = t::conformance_chains().front();
    chain.observed = chain.observed.clone();
    chain.coords = chain.coords.clone();
    chain.observed[3] = false;
    chain.coords[3].fill_(std::numeric_limits<float>::quiet_NaN());
    std::string message;
    torch::Tensor out;
    CHECK(t::succeeds_or_reports([&] { out = encoder->embed(chain); }, &message));
    INFO(message);
    if (out.defined()) {
      CHECK(out[3].abs().max().item<double>() == 0.0);
      CHECK(torch::isfinite(out).all().item<bool>());
    }
  }
}

TEST_CASE("conformance: weights round-trip through save_weights and load_weights", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::StructureEncoderRegistry::instance().names()) {
    INFO("structure_encoder '" << name << "'");
    torch::manual_seed(1);
    const auto saved = build_structure_encoder(name);
    if (!saved->needs_weights()) continue;  // nothing learned here, nothing to save
    torch::manual_seed(2);
    const auto loaded = build_structure_encoder(name);
    const auto file = t::temp_dir("conformance-pgnn-weights-" + name) / "weights.safetensors";
    saved->save_weights(file);
    loaded->load_weights(file);
    const auto& chain = t::conformance_chains().front();
    const double diff = (saved->embed(chain) - loaded->embed(chain)).abs().max().item<double>();
    std::cout << "conformance " << name << ": save/load max diff " << diff << "\n";
    CHECK(diff == 0.0);
    // A file that is not this encoder's weights is a clear error.
    const auto bad = file.parent_path() / "bad.safetensors";
    { std::ofstream(bad) << "not safetensors"; }
    CHECK_THROWS_AS(loaded->load_weights(bad), sapling::Error);
  }
}

TEST_CASE("conformance: empty and one-residue chains give [n, D] or a clear error", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::StructureEncoderRegistry::instance().names()) {
    INFO("structure_encoder '" << name << "'");
    const auto encoder = build_structure_encoder(name);
    for (int64_t n : {0, 1}) {
      const auto chain = t::first_residues(t::conformance_chains().front(), n);
      torch::Tensor out;
      std::string message;
      CHECK(t::succeeds_or_reports([&] { out = encoder->embed(chain); }, &message));
      INFO(n << " residues: " << (out.defined() ? "returned" : "error: " + message));
      if (out.defined()) {
        CHECK(out.size(0) == n);
        CHECK(torch::isfinite(out).all().item<bool>());
      }
    }
  }
}
