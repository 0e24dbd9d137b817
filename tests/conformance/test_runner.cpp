// The conformance runner itself: a failing component is named with its reason and the others still run; a loss
// reading a field the batch lacks gets a sapling::Error naming the field.
#include <catch2/catch.hpp>

#include <fstream>

#include "sapling/interfaces.hpp"
#include "test_support.hpp"

namespace {
namespace t = sapling::test;

std::string runner() { return (t::binary_dir() / "sapling-conformance").string(); }
}  // namespace

TEST_CASE("sapling-conformance names each failing component and goes on with the rest", "[conformance]") {
  const auto plugin = t::binary_dir() / "test_plugins/conformance_mixed/conformance_mixed.so";
  const auto r = t::run_command(runner() + " " + t::quote(plugin));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("FAIL residue_selector fixture_one_too_many: one keep flag per residue") != std::string::npos);
  CHECK(r.output.find("one flag per residue, got 51") != std::string::npos);
  CHECK(r.output.find("ok   residue_selector fixture_keep_all_c: one keep flag per residue") != std::string::npos);
  // The loss reads bfactor: the runner filled it from a real structure.
  CHECK(r.output.find("ok   alignment_loss fixture_bfactor_mean: scores real residues") != std::string::npos);
  CHECK(r.output.find("ok   alignment_loss fixture_bfactor_mean: a batch without a declared field") !=
        std::string::npos);
  CHECK(r.output.find("failing components: residue_selector 'fixture_one_too_many'\n") != std::string::npos);
}

TEST_CASE("sapling-conformance refuses what it cannot run, with exit status 2", "[conformance]") {
  auto r = t::run_command(runner() + " /nonexistent/sapling_x.so");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("/nonexistent/sapling_x.so: no such plugin library") != std::string::npos);
  r = t::run_command("SAPLING_PLUGIN_PATH=/nonexistent " + runner() + " no_such_plugin");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("no plugin named 'no_such_plugin'") != std::string::npos);
  const auto bad = t::temp_dir("conformance-examples") / "conformance.toml";
  { std::ofstream(bad) << "[alignment_loss.fixture_bfactor_mean]\noptions = { nope = 1 }\n"; }
  r = t::run_command(runner() + " " +
                     t::quote(t::binary_dir() / "test_plugins/conformance_mixed/conformance_mixed.so") +
                     " --examples " + t::quote(bad));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("conformance.toml:2: [alignment_loss.fixture_bfactor_mean.options] key 'nope': unknown key") !=
        std::string::npos);
}

TEST_CASE("a loss reading a field the batch lacks gets a sapling::Error naming it", "[conformance]") {
  sapling::LossInputs inputs;
  CHECK_THROWS_AS(inputs.field(sapling::loss_fields::kBfactor), sapling::Error);
  CHECK_THROWS_WITH(inputs.field(sapling::loss_fields::kBfactor), Catch::Contains("'bfactor'"));
  inputs.fields["bfactor"] = torch::zeros({1, 2});
  CHECK(inputs.field("bfactor").size(1) == 2);
}
