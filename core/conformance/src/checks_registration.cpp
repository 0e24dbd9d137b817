// Checks of every registration (any kind): described, options documented, defaults valid; and evaluation tasks.
#include "checks.hpp"
#include "sapling/evaluation.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/pretraining.hpp"

namespace sapling::conformance {

namespace registration_impl {  // named, not anonymous: the unity build compiles these files as one unit

// `sapling plugins list` and `sapling eval TASK --help` print these: every component says what it is and every
// option what it does.
template <typename Interface>
Check described() {
  return {Interface::kind, "is described and documents its options",
          [](Checker& c, const std::string& name, const RunContext&) {
            const auto& entry = Registry<Interface>::instance().find(name);
            c.expect(entry.description.size() >= 10, "a description of at least 10 characters");
            c.expect(static_cast<bool>(entry.factory), "a factory");
            for (const auto& option : entry.schema.names()) {
              const auto* spec = entry.schema.find(option);
              if (c.expect(spec != nullptr, "option '" + option + "' is in the schema"))
                c.expect(!spec->help.empty(), "option '" + option + "' has a help text");
            }
          }};
}

// Every path option pointing into a folder that does not exist: the task's error names it.
void names_missing_data(Checker& c, const std::string& name, const RunContext& context) {
  const auto* model_table = context.examples.inputs("sequence_encoder");
  const auto& entry = EvaluationTaskRegistry::instance().find(name);
  const std::string missing = "/nonexistent/sapling-conformance-data";
  std::vector<std::string> paths;
  for (const auto& option : entry.schema.names())
    if (entry.schema.find(option)->type == OptionType::Path) paths.push_back(option);
  if (paths.empty()) {
    c.skip("reads no file");
    return;
  }
  const auto component = model_table ? (*model_table)["component"].value<std::string>() : std::optional<std::string>();
  if (!component) {
    c.skip("no model to run it with ([inputs.sequence_encoder] component = NAME, options = {...} in the examples)");
    return;
  }
  const auto& model_entry = SequenceEncoderRegistry::instance().find(*component);
  const auto model = model_entry.factory(context.examples.input_options("sequence_encoder", model_entry.schema));
  Options options = context.examples.options(EvaluationTask::kind, name, entry.schema);
  for (const auto& option : paths) options.set(option, missing + "/" + option);
  std::string message;
  bool failed = false;
  try {
    entry.factory(options)->run(*model);
  } catch (const Error& e) {
    failed = true;
    message = e.what();
  }
  c.expect(failed, "missing data files are a sapling::Error");
  c.expect(message.find(missing) != std::string::npos, "the error names the missing file: " + message);
}

}  // namespace registration_impl

std::vector<Check> registration_checks() {
  using namespace registration_impl;
  return {described<SequenceEncoder>(),
          described<StructureEncoder>(),
          described<StructureTokenizer>(),
          described<AlignmentLoss>(),
          described<ResidueSelector>(),
          described<EvaluationTask>(),
          described<StructurePretrainingObjective>(),
          described<FieldProvider>()};
}

std::vector<Check> evaluation_task_checks() {
  using namespace registration_impl;
  return {{EvaluationTask::kind, "names its missing data file in the error", names_missing_data}};
}

}  // namespace sapling::conformance
