// Conformance of every registered evaluation task, and of every registration: described, options documented, defaults valid.
#include <catch2/catch.hpp>

#include "conformance_support.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/pretraining.hpp"

namespace {
namespace t = sapling::test;

// `sapling plugins list` and `sapling eval TASK --help` print these: every component says what it is and every
// option what it does, and the defaults pass the component's own schema.
template <typename Interface>
void check_registrations() {
  for (const auto& [name, entry] : sapling::Registry<Interface>::instance().entries()) {
    INFO(Interface::kind << " '" << name << "' (plugin " << entry.plugin << ")");
    CHECK(entry.description.size() >= 10);
    CHECK(entry.factory);
    for (const auto& option : entry.schema.names()) {
      INFO("option '" << option << "'");
      const auto* spec = entry.schema.find(option);
      REQUIRE(spec);
      CHECK_FALSE(spec->help.empty());
    }
  }
}
}  // namespace

TEST_CASE("conformance: every registration is described and documents its options", "[conformance]") {
  t::load_build_plugins();
  check_registrations<sapling::SequenceEncoder>();
  check_registrations<sapling::StructureEncoder>();
  check_registrations<sapling::StructureTokenizer>();
  check_registrations<sapling::AlignmentLoss>();
  check_registrations<sapling::ResidueSelector>();
  check_registrations<sapling::FieldProvider>();
  check_registrations<sapling::EvaluationTask>();
  check_registrations<sapling::StructurePretrainingObjective>();
}

TEST_CASE("conformance: every evaluation task names its missing data file in the error", "[conformance]") {
  t::load_build_plugins();
  const auto& registry = sapling::EvaluationTaskRegistry::instance();
  REQUIRE_FALSE(registry.names().empty());
  const auto& esm2 = sapling::SequenceEncoderRegistry::instance().find("esm2");
  const auto model = esm2.factory(t::with(esm2.schema, {{"path", (t::fixtures_dir() / "esm2_tiny").string()}}));
  const std::string missing = "/nonexistent/sapling-conformance-data";
  for (const auto& [name, entry] : registry.entries()) {
    INFO("evaluation_task '" << name << "'");
    // Every path option points into a folder that does not exist.
    std::map<std::string, sapling::OptionValue> paths;
    for (const auto& option : entry.schema.names())
      if (entry.schema.find(option)->type == sapling::OptionType::Path) paths[option] = missing + "/" + option;
    if (paths.empty()) continue;  // a task that reads no file
    std::string message;
    bool failed = false;
    try {
      auto task = entry.factory(t::with(entry.schema, paths));
      task->run(*model);
    } catch (const sapling::Error& e) {
      failed = true;
      message = e.what();
    }
    INFO(message);
    CHECK(failed);
    CHECK(message.find(missing) != std::string::npos);
  }
}
