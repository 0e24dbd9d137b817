// Structure encoder (pGNN) checks: shapes, zero rows without a CA, determinism, weights, tiny chains.
#include <fstream>
#include <limits>

#include "checks.hpp"
#include "sapling/interfaces.hpp"

namespace sapling::conformance {

namespace structure_encoder_impl {  // named, not anonymous: the unity build compiles these files as one unit

std::shared_ptr<StructureEncoder> build_encoder(const std::string& name, const RunContext& context) {
  auto encoder = build_component<StructureEncoder>(name, context);
  encoder->eval();
  return encoder;
}

void embeds(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const auto encoder = build_encoder(name, context);
  c.expect(encoder->output_dim() > 0, "output_dim() > 0");
  for (const ChainStructure& chain : context.fixtures.chains) {
    Checker::Context in(c, text("chain ", chain.label(), " (", chain.length(), " residues)"));
    const auto first = encoder->embed(chain);
    if (!c.expect(first.dim() == 2, text("embed() is [L, D], got ", first.sizes()))) continue;
    c.expect(first.size(0) == chain.length(), text("one row per residue, got ", first.size(0)));
    c.expect(first.size(1) == encoder->output_dim(), text("output_dim() columns, got ", first.size(1)));
    c.expect(torch::isfinite(first).all().item<bool>(), "finite");
    c.expect(torch::equal(first, encoder->embed(chain)), "deterministic");
  }
}

void zero_rows(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto encoder = build_encoder(name, context);
  ChainStructure chain = context.fixtures.chains.front();
  chain.observed = chain.observed.clone();
  chain.coords = chain.coords.clone();
  chain.observed[3] = false;
  chain.coords[3].fill_(std::numeric_limits<float>::quiet_NaN());
  std::string message;
  torch::Tensor out;
  c.expect(succeeds_or_reports([&] { out = encoder->embed(chain); }, &message),
           "returns or throws sapling::Error, not: " + message);
  if (out.defined()) {
    c.expect(out[3].abs().max().item<double>() == 0.0, "the residue without a CA gets a zero row");
    c.expect(torch::isfinite(out).all().item<bool>(), "finite");
  }
}

void weights(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const auto saved = build_encoder(name, context);
  if (!saved->needs_weights()) {
    c.skip("needs_weights() is false: nothing learned, nothing to save");
    return;
  }
  torch::manual_seed(2);
  const auto loaded = build_encoder(name, context);
  const auto file = context.scratch / "weights.safetensors";
  saved->save_weights(file);
  loaded->load_weights(file);
  const auto& chain = context.fixtures.chains.front();
  const double diff = (saved->embed(chain) - loaded->embed(chain)).abs().max().item<double>();
  c.note(text("save/load max diff ", diff));
  c.expect(diff == 0.0, text("the loaded weights embed differently (max diff ", diff, ")"));
  // A file that is not this encoder's weights is a clear error.
  const auto bad = context.scratch / "bad.safetensors";
  { std::ofstream(bad) << "not safetensors"; }
  bool reported = false;
  try {
    loaded->load_weights(bad);
  } catch (const Error&) {
    reported = true;
  } catch (const std::exception& e) {
    c.failure(text("load_weights of a file that is not safetensors threw a non-sapling::Error: ", e.what()));
    return;
  }
  c.expect(reported, "load_weights of a file that is not safetensors throws sapling::Error");
}

void tiny_chains(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto encoder = build_encoder(name, context);
  for (int64_t n : {0, 1}) {
    Checker::Context in(c, text(n, " residues"));
    const auto chain = first_residues(context.fixtures.chains.front(), n);
    torch::Tensor out;
    std::string message;
    c.expect(succeeds_or_reports([&] { out = encoder->embed(chain); }, &message),
             "returns or throws sapling::Error, not: " + message);
    if (out.defined()) {
      c.expect(out.size(0) == n, text("[n, D], got ", out.sizes()));
      c.expect(torch::isfinite(out).all().item<bool>(), "finite");
    }
  }
}

}  // namespace structure_encoder_impl

std::vector<Check> structure_encoder_checks() {
  using namespace structure_encoder_impl;
  const std::string kind = StructureEncoder::kind;
  return {{kind, "embeds a chain as [L, output_dim], deterministically", embeds},
          {kind, "residues without a CA get zero rows", zero_rows},
          {kind, "weights round-trip through save_weights and load_weights", weights},
          {kind, "empty and one-residue chains give [n, D] or a clear error", tiny_chains}};
}

}  // namespace sapling::conformance
