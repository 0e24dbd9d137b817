// Recipes: strict validation (unknown key with its line and nearest key, wrong type, range), base
// inheritance and cycles, --set overrides, and the shipped recipes passing `recipe check`.
#include <catch2/catch.hpp>
#include <fstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/recipe.hpp"
#include "test_support.hpp"

namespace {

std::filesystem::path write(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

// A settings section registered by this test, standing in for the trainer's [optim].
void register_test_section() {
  static bool done = [] {
    sapling::SectionSpec spec{"test_optim", sapling::SectionKind::Settings, "", {}, "test"};
    spec.schema.add("learning_rate", sapling::OptionType::Float).default_value(1e-4).min(0, true);
    spec.schema.add("ratio", sapling::OptionType::Float).default_value(0.8).min(0, true).max(1);
    spec.schema.add("steps", sapling::OptionType::Int).default_value(int64_t{10});
    spec.schema.add("data", sapling::OptionType::Path).default_value(std::string("data"));
    sapling::register_recipe_section(spec);
    return true;
  }();
  (void)done;
}

std::string validate_error(const std::filesystem::path& file, const std::vector<std::string>& overrides = {}) {
  try {
    sapling::Recipe::load(file, overrides).validate();
  } catch (const sapling::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a misspelt key fails naming the file, line, key and the nearest valid key", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe");
  auto f = write(dir, "r.toml", "# comment\n[test_optim]\nsteps = 3\nlearnig_rate = 1e-3\n");
  auto msg = validate_error(f);
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("r.toml:4: [test_optim] key 'learnig_rate': unknown key (did you mean 'learning_rate'?)"));
}

TEST_CASE("wrong types, out-of-range values and unknown sections are errors", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe");
  CHECK_THAT(validate_error(write(dir, "a.toml", "[test_optim]\nsteps = \"many\"\n")),
             Catch::Contains("a.toml:2: [test_optim] key 'steps': wrong type, expected an integer"));
  CHECK_THAT(validate_error(write(dir, "b.toml", "[test_optim]\nlearning_rate = -1.0\n")),
             Catch::Contains("b.toml:2: [test_optim] key 'learning_rate': value -1 is out of range (expected > 0)"));
  CHECK_THAT(validate_error(write(dir, "c.toml", "[test_optim]\nratio = 1.5\n")),
             Catch::Contains("expected <= 1"));
  CHECK_THAT(validate_error(write(dir, "d.toml", "[test_optimm]\nratio = 0.5\n")),
             Catch::Contains("d.toml:1: unknown section 'test_optimm' (did you mean 'test_optim'?)"));
  CHECK_THAT(validate_error(write(dir, "e.toml", "[test_optim\n")), Catch::Contains("e.toml:1:") && Catch::Contains("TOML syntax error"));
  CHECK_THAT(validate_error(write(dir, "f.toml", "[model]\npath = \"x\"\n")),
             Catch::Contains("[model] needs a key 'plugin'"));
  CHECK_THAT(validate_error(write(dir, "g.toml", "[selector]\nplugin = \"no_such_thing\"\n")),
             Catch::Contains("g.toml:2: [selector] key 'plugin': no residue_selector named 'no_such_thing'"));
}

TEST_CASE("base inheritance overrides values, bad bases and cycles are errors", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe");
  write(dir, "base.toml", "[test_optim]\nsteps = 3\nratio = 0.5\n");
  auto child = write(dir, "child.toml", "base = \"base.toml\"\n[test_optim]\nsteps = 7\n");
  auto recipe = sapling::Recipe::load(child);
  recipe.validate();
  auto opts = recipe.settings("test_optim");
  CHECK(opts.get_int("steps") == 7);
  CHECK(opts.get_float("ratio") == 0.5);
  CHECK_THAT(opts.origin("ratio"), Catch::Contains("base.toml:3"));
  // Relative paths resolve against the file that set them.
  CHECK(opts.get_path("data") == "data");

  CHECK_THAT(validate_error(write(dir, "missing.toml", "base = \"nope.toml\"\n")),
             Catch::Contains("missing.toml: base recipe") && Catch::Contains("nope.toml' does not exist"));
  CHECK_THAT(validate_error(write(dir, "self.toml", "base = \"self.toml\"\n")), Catch::Contains("inheritance cycle"));
  write(dir, "x.toml", "base = \"y.toml\"\n");
  CHECK_THAT(validate_error(write(dir, "y.toml", "base = \"x.toml\"\n")), Catch::Contains("inheritance cycle"));
}

TEST_CASE("command-line --set overrides values and rejects keys that do not exist", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe");
  auto f = write(dir, "r.toml", "[test_optim]\nsteps = 3\n");
  auto recipe = sapling::Recipe::load(f, {"test_optim.steps=11", "test_optim.data=here"});
  recipe.validate();
  CHECK(recipe.settings("test_optim").get_int("steps") == 11);
  CHECK(recipe.settings("test_optim").get_path("data") == "here");  // command line: relative to the CWD
  CHECK_THAT(validate_error(f, {"test_optim.stesp=4"}),
             Catch::Contains("--set: [test_optim] key 'stesp': unknown key (did you mean 'steps'?)"));
  CHECK_THAT(validate_error(f, {"nonsense"}), Catch::Contains("expected table.key=value"));
}

TEST_CASE("every shipped recipe passes `sapling recipe check`", "[recipe][cli]") {
  auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe check " +
                                      (sapling::test::source_dir() / "recipes").string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("recipes valid"));
}

TEST_CASE("`sapling recipe check` reports a misspelt key with its line and exit code 1", "[recipe][cli]") {
  const auto dir = sapling::test::temp_dir("recipecli");
  auto f = write(dir, "bad.toml", "[plugins]\npaht = []\n");
  auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe check " + f.string());
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("bad.toml:2: [plugins] key 'paht': unknown key (did you mean 'paths'?)"));
}
