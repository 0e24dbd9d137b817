// Recipes: strict validation (unknown key with its line and nearest key, wrong type, range), base
// inheritance and cycles, --set overrides, the shipped recipes passing `recipe check`, by name
// (`recipe list`, `recipe copy`), and numbers printed as written.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/recipe.hpp"
#include "sapling/internal/recipe_catalog.hpp"
#include "sapling/internal/toml_text.hpp"
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
             Catch::Contains("[model] needs a key 'component'"));
  CHECK_THAT(validate_error(write(dir, "g.toml", "[selector]\ncomponent = \"no_such_thing\"\n")),
             Catch::Contains("g.toml:2: [selector] key 'component': no residue_selector named 'no_such_thing'"));
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

TEST_CASE("a list of bases merges in order, later bases and then the file itself winning", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe");
  write(dir, "first.toml", "[test_optim]\nsteps = 3\nratio = 0.5\n");
  write(dir, "second.toml", "[test_optim]\nsteps = 5\n");
  auto recipe = sapling::Recipe::load(write(dir, "both.toml", "base = [\"first.toml\", \"second.toml\"]\n"));
  recipe.validate();
  CHECK(recipe.settings("test_optim").get_int("steps") == 5);
  CHECK(recipe.settings("test_optim").get_float("ratio") == 0.5);
  CHECK_THAT(recipe.settings("test_optim").origin("steps"), Catch::Contains("second.toml:2"));
  CHECK_THAT(recipe.settings("test_optim").origin("ratio"), Catch::Contains("first.toml:3"));
  auto own = sapling::Recipe::load(write(dir, "own.toml", "base = [\"second.toml\", \"first.toml\"]\n[test_optim]\nratio = 0.25\n"));
  CHECK(own.settings("test_optim").get_int("steps") == 3);
  CHECK(own.settings("test_optim").get_float("ratio") == 0.25);
  CHECK_THAT(validate_error(write(dir, "number.toml", "base = [\"first.toml\", 3]\n")),
             Catch::Contains("number.toml:1") && Catch::Contains("expected a path string or a list of them"));
  CHECK_THAT(validate_error(write(dir, "empty.toml", "base = []\n")), Catch::Contains("the list is empty"));
  CHECK_THAT(validate_error(write(dir, "gone.toml", "base = [\"first.toml\", \"gone_too.toml\"]\n")),
             Catch::Contains("gone_too.toml' does not exist"));
}

TEST_CASE("the old component key `plugin` is read with one warning per file and keeps resume digests", "[recipe][cli]") {
  const auto dir = sapling::test::temp_dir("recipe_legacy");
  const auto old_style = write(dir, "old.toml", "[selector]\nplugin = \"own_loss\"\nratio = 0.5\n\n[losses.mlm]\nplugin = \"mlm\"\n");
  const auto new_style = write(dir, "new.toml", "[selector]\ncomponent = \"own_loss\"\nratio = 0.5\n\n[losses.mlm]\ncomponent = \"mlm\"\n");
  const std::string exe = sapling::test::sapling_exe();
  auto r = sapling::test::run_command(exe + " recipe show " + old_style.string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("old.toml: key 'plugin' (lines 2, 6) is now called 'component'"));
  CHECK(r.output.find("is now called") == r.output.rfind("is now called"));  // once for the file, not per table
  CHECK_THAT(r.output, Catch::Contains("component = 'own_loss'") && Catch::Contains("component = 'mlm'"));
  // The resolved recipe is the same either way, and so is the identity a resumed run is checked against.
  CHECK(sapling::Recipe::load(old_style).resolved_text() == sapling::Recipe::load(new_style).resolved_text());
  CHECK(sapling::Recipe::load(old_style).identity_text() == sapling::Recipe::load(new_style).identity_text());
  CHECK_THAT(sapling::Recipe::load(new_style).identity_text(), Catch::Contains("plugin = 'own_loss'") ||
                                                                  Catch::Contains("plugin = \"own_loss\""));

  r = sapling::test::run_command(exe + " recipe show " + new_style.string() + " --set selector.plugin=own_loss");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("--set selector.plugin: key 'plugin' is now called 'component'"));

  const auto both = write(dir, "both.toml", "[selector]\ncomponent = \"own_loss\"\nplugin = \"none\"\n");
  r = sapling::test::run_command(exe + " recipe check " + both.string());
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("both.toml:3: both 'component' and its old name 'plugin' are set"));
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

  // Swapping a component drops the old one's options (as a base recipe's swap does); later --set give the new ones.
  auto g = write(dir, "s.toml", "[selector]\ncomponent = \"excess_loss\"\nratio = 0.8\nreference = \"ref\"\n");
  auto swapped = sapling::Recipe::load(g, {"selector.component=own_loss", "selector.ratio=0.5"});
  const auto* selector = swapped.table().get_as<toml::table>("selector");
  REQUIRE(selector);
  CHECK(selector->size() == 2);
  CHECK(selector->get("reference") == nullptr);
  CHECK(selector->get("component")->value<std::string>() == "own_loss");
  CHECK(selector->get("ratio")->value<double>() == 0.5);
  auto same = sapling::Recipe::load(g, {"selector.component=excess_loss"});  // the same component keeps its options
  CHECK(same.table().get_as<toml::table>("selector")->size() == 3);
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

namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::vector<std::filesystem::path> shipped_files() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(sapling::test::source_dir() / "recipes"))
    if (e.is_regular_file() && e.path().extension() == ".toml") out.push_back(e.path());
  return out;
}

// Two validated option sets mean the same: equal values, paths naming the same file.
void check_same_options(const sapling::Options& a, const sapling::Options& b, const std::string& where) {
  INFO(where);
  REQUIRE(a.keys() == b.keys());
  for (const auto& key : a.keys()) {
    INFO(key);
    if (a.to_string(key) == b.to_string(key)) continue;
    CHECK(std::filesystem::weakly_canonical(std::filesystem::absolute(a.get_path(key))) ==
          std::filesystem::weakly_canonical(std::filesystem::absolute(b.get_path(key))));
  }
}

}  // namespace

TEST_CASE("every shipped recipe has a purpose, and `sapling recipe list` shows each by name", "[recipe][cli]") {
  const auto dir = sapling::test::source_dir() / "recipes";
  const auto recipes = sapling::shipped_recipes(dir);  // fails for a recipe without a leading comment
  const auto files = shipped_files();
  REQUIRE(recipes.size() == files.size());
  size_t fragments = 0;
  for (const auto& r : recipes) {
    INFO(r.name);
    CHECK_FALSE(r.purpose.empty());
    CHECK(r.purpose.size() <= 110);
    CHECK(r.file == dir / (r.name + ".toml"));
    fragments += r.base_only;
  }
  CHECK(fragments == 3);  // method, repro/esm2_common, repro/amplify_common

  auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe list");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("saesm2_8m  ") && Catch::Contains("ablations/mlm_only") &&
                           Catch::Contains("repro/esm2_full") &&
                           Catch::Contains("SaESM2-8M: structure alignment of ESM2 8M with the published settings (method.toml)."));
  for (const auto& recipe : recipes) {
    INFO(recipe.name);
    const bool listed = r.output.find("\n" + recipe.name + " ") != std::string::npos || r.output.rfind(recipe.name + " ", 0) == 0;
    CHECK(listed == !recipe.base_only);
  }
  r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe list --all");
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("[base only]") && Catch::Contains("repro/esm2_common"));
  for (const auto& recipe : recipes) CHECK_THAT(r.output, Catch::Contains(recipe.name + " "));
}

TEST_CASE("`sapling recipe copy` writes one self-contained file that means what the shipped recipe means", "[recipe][cli]") {
  sapling::test::load_build_plugins();
  const auto root = sapling::test::temp_dir("recipe-copy");
  for (const std::string name : {"ablations/mlm_only", "saesm2_8m", "repro/esm2_no_structure_tokens", "quickstart"}) {
    DYNAMIC_SECTION(name) {
      const auto dest = root / "elsewhere" / "deeper" / "mine.toml";
      std::filesystem::remove_all(root / "elsewhere");
      auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe copy " + name + " " + quoted(dest));
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      const auto text = read_text(dest);
      CHECK(text.rfind("# ", 0) == 0);  // the shipped recipe's comment comes first
      CHECK_THAT(text, Catch::Contains("Copied from the shipped recipe '" + name + "'"));
      CHECK(text.find("\nbase =") == std::string::npos);
      CHECK(text.find("base-only") == std::string::npos);

      const auto original = sapling::Recipe::load(sapling::test::source_dir() / "recipes" / (name + ".toml"));
      const auto copy = sapling::Recipe::load(dest);
      for (const auto& spec : sapling::recipe_sections()) {
        if (!original.has_section(spec.name)) {
          CHECK_FALSE(copy.has_section(spec.name));
          continue;
        }
        REQUIRE(copy.has_section(spec.name));
        if (spec.kind == sapling::SectionKind::Settings)
          check_same_options(original.settings(spec.name), copy.settings(spec.name), spec.name);
        else if (spec.kind == sapling::SectionKind::Component)
          check_same_options(original.component(spec.name).second, copy.component(spec.name).second, spec.name);
        else
          for (const auto& member : original.group_members(spec.name))
            check_same_options(original.component(spec.name + "." + member).second,
                               copy.component(spec.name + "." + member).second, spec.name + "." + member);
      }
      if (original.has_section("plugins")) CHECK(original.plugin_paths().size() == copy.plugin_paths().size());
      // The copy checks from any working folder.
      r = sapling::test::run_command("cd / && " + sapling::test::sapling_exe() + " recipe check " + quoted(dest));
      INFO(r.output);
      CHECK(r.exit_code == 0);
    }
  }
  std::filesystem::remove_all(root);
}

TEST_CASE("`sapling recipe copy` into a folder, over an existing file, and with an unknown name", "[recipe][cli]") {
  const auto root = sapling::test::temp_dir("recipe-copy-errors");
  const auto exe = sapling::test::sapling_exe();
  auto r = sapling::test::run_command(exe + " recipe copy saesm2_8m " + quoted(root));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(std::filesystem::exists(root / "saesm2_8m.toml"));
  const auto before = read_text(root / "saesm2_8m.toml");

  r = sapling::test::run_command(exe + " recipe copy ablations/mlm_only " + quoted(root / "saesm2_8m.toml"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("error: ") && Catch::Contains("saesm2_8m.toml: already exists (pass --force"));
  CHECK(read_text(root / "saesm2_8m.toml") == before);
  r = sapling::test::run_command(exe + " recipe copy ablations/mlm_only " + quoted(root / "saesm2_8m.toml") + " --force");
  CHECK(r.exit_code == 0);
  CHECK(read_text(root / "saesm2_8m.toml") != before);

  r = sapling::test::run_command(exe + " recipe copy saesm2_8n " + quoted(root / "x.toml"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("error: no shipped recipe named 'saesm2_8n' (close matches: saesm2_8m"));
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);  // one line
  CHECK_FALSE(std::filesystem::exists(root / "x.toml"));
  r = sapling::test::run_command(exe + " recipe copy no_contrastive " + quoted(root / "x.toml"));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("close matches: ablations/no_contrastive"));
  r = sapling::test::run_command(exe + " recipe copy saesm2_8m");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("error: recipe copy takes a shipped recipe name and a destination"));
  std::filesystem::remove_all(root);
}

TEST_CASE("recipes are found by name where a file is expected", "[recipe][cli]") {
  const auto exe = sapling::test::sapling_exe();
  auto r = sapling::test::run_command(exe + " recipe show saesm2_8m");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("[losses.contrastive]"));
  r = sapling::test::run_command(exe + " recipe check ablations/mlm_only repro/esm2_full.toml");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("2 of 2 recipes valid"));
  r = sapling::test::run_command(exe + " train saesm2_8n --max-steps 1");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("error: saesm2_8n: no such recipe file, and no shipped recipe named 'saesm2_8n' "
                                       "(close matches: saesm2_8m"));
}

TEST_CASE("`recipe show` prints numbers as a person wrote them", "[recipe][cli]") {
  auto r = sapling::test::run_command(sapling::test::sapling_exe() + " recipe show saesm2_8m");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("initial_temperature = 0.07\n") && Catch::Contains("\nlr = 1e-4\n") &&
                           Catch::Contains("weight_decay = 0.01\n"));
  CHECK_FALSE(std::regex_search(r.output, std::regex("[0-9]\\.[0-9]{12,}")));  // no 17-digit renderings
  // The rewrite touches float values only: keys, strings, integers, dates and inline tables stay.
  const std::string in =
      "1e5 = 0.070000000000000007\n"
      "x = [0.10000000000000001, 2.5, -1.0000000000000001e-05, 3]\n"
      "s = \"0.070000000000000007 # not a comment\"\n"
      "m = '''\n0.10000000000000001\n'''\n"
      "d = 1979-05-27T07:32:00Z\n"
      "t = { a = 0.20000000000000001, 1.5 = 2 }\n"
      "[table.0.5]\n"
      "n = 1000000.0\n"
      "big = 1.0000000000000001e+300\n";
  const std::string want =
      "1e5 = 0.07\n"
      "x = [0.1, 2.5, -1e-5, 3]\n"
      "s = \"0.070000000000000007 # not a comment\"\n"
      "m = '''\n0.10000000000000001\n'''\n"
      "d = 1979-05-27T07:32:00Z\n"
      "t = { a = 0.2, 1.5 = 2 }\n"
      "[table.0.5]\n"
      "n = 1000000.0\n"
      "big = 1e300\n";
  CHECK(sapling::shortest_toml_floats(in) == want);
  // What is printed reads back to the same doubles.
  const auto table = toml::parse(in);
  const auto again = toml::parse(sapling::format_toml(table));
  CHECK(again["x"][0].value<double>() == table["x"][0].value<double>());
  CHECK(again["1e5"].value<double>() == table["1e5"].value<double>());
  CHECK(again["big"].value<double>() == table["big"].value<double>());
}

TEST_CASE("relocated_text re-points relative paths set anywhere in the base chain, and only those", "[recipe]") {
  register_test_section();
  const auto dir = sapling::test::temp_dir("recipe-relocate");
  std::filesystem::create_directories(dir / "a" / "plug");
  std::filesystem::create_directories(dir / "b");
  write(dir / "a", "base.toml", "[plugins]\npaths = [\"plug\"]\n[test_optim]\ndata = \"inputs/d\"\nratio = 0.3\n");
  const auto child = write(dir / "b", "child.toml", "base = \"../a/base.toml\"\n[test_optim]\nsteps = 7\n");
  const auto absolute = write(dir / "b", "abs.toml", "[test_optim]\ndata = \"/data/x\"\n");
  const auto text = sapling::Recipe::load(child).relocated_text(dir / "c");
  INFO(text);
  CHECK_THAT(text, Catch::Contains("paths = [ '../a/plug' ]") || Catch::Contains("paths = [ \"../a/plug\" ]"));
  CHECK_THAT(text, Catch::Contains("data = '../a/inputs/d'") || Catch::Contains("data = \"../a/inputs/d\""));
  CHECK_THAT(text, Catch::Contains("ratio = 0.3\n") && Catch::Contains("steps = 7"));
  CHECK(text.find("base") == std::string::npos);
  // Written into c/, it means what the original means.
  std::filesystem::create_directories(dir / "c");
  const auto copy = write(dir / "c", "copy.toml", text);
  const auto original = sapling::Recipe::load(child);
  const auto relocated = sapling::Recipe::load(copy);
  CHECK(std::filesystem::weakly_canonical(relocated.settings("test_optim").get_path("data")) ==
        std::filesystem::weakly_canonical(original.settings("test_optim").get_path("data")));
  REQUIRE(relocated.plugin_paths().size() == 1);
  CHECK(std::filesystem::weakly_canonical(relocated.plugin_paths()[0]) == std::filesystem::weakly_canonical(dir / "a" / "plug"));
  // Absolute paths stay; a copy far from its inputs names them absolutely.
  CHECK_THAT(sapling::Recipe::load(absolute).relocated_text(dir / "c"), Catch::Contains("/data/x"));
  const auto far = sapling::Recipe::load(child).relocated_text(dir / "c" / "d" / "e" / "f");
  CHECK_THAT(far, Catch::Contains((std::filesystem::weakly_canonical(dir) / "a" / "inputs" / "d").string()));
  std::filesystem::remove_all(dir);
}
