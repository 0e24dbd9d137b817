// The conformance checks: one list per component kind, each check a function of one registered component.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checker.hpp"
#include "examples.hpp"
#include "fixtures.hpp"
#include "generate.hpp"
#include "sapling/error.hpp"
#include "sapling/registry.hpp"

namespace sapling::conformance {

// What every check gets: the examples, the fixture chains and a scratch folder of its own.
struct RunContext {
  const Examples& examples;
  const Fixtures& fixtures;
  std::filesystem::path scratch;  // a fresh folder per (component, check)
};

struct Check {
  std::string kind;  // the interface it applies to (Interface::kind)
  std::string what;  // one line: what a passing component does
  std::function<void(Checker&, const std::string& component, const RunContext&)> run;
};

// Every check, kind by kind (checks_<kind>.cpp); the registration check first.
std::vector<Check> all_checks();

std::vector<Check> registration_checks();
std::vector<Check> sequence_encoder_checks();
std::vector<Check> structure_encoder_checks();
std::vector<Check> tokenizer_checks();
std::vector<Check> trainable_tokenizer_checks();
std::vector<Check> loss_checks();
std::vector<Check> selector_checks();
std::vector<Check> evaluation_task_checks();
std::vector<Check> pretraining_objective_checks();
std::vector<Check> field_provider_checks();

// Builds component `name` of `Interface` with the options of its examples ([KIND.NAME]; else its defaults),
// generated inputs written under `scratch`. A failure is an error saying where its options go.
template <typename Interface>
std::shared_ptr<Interface> build_component(const std::string& name, const RunContext& context,
                                           const std::filesystem::path& scratch) {
  const auto& entry = Registry<Interface>::instance().find(name);
  try {
    Options options = context.examples.options(Interface::kind, name, entry.schema);
    generate_inputs(context.examples, Interface::kind, name, context.fixtures, scratch, options);
    auto built = entry.factory(options);
    if (!built) fail("its factory returned nothing");
    return built;
  } catch (const std::exception& e) {
    fail("cannot build ", Interface::kind, " '", name, "' for the conformance checks: ", e.what(),
         "\n(a component that needs inputs gets its options in [", Interface::kind, ".", name, "] of ",
         context.examples.file().empty() ? std::string("its plugin's conformance.toml, passed as --examples FILE")
                                         : context.examples.file().string(),
         ")");
  }
}

template <typename Interface>
std::shared_ptr<Interface> build_component(const std::string& name, const RunContext& context) {
  return build_component<Interface>(name, context, context.scratch / "inputs");
}

}  // namespace sapling::conformance
