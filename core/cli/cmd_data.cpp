// `sapling data list | fetch NAME... | verify NAME...`: the named data sets of datasets/manifest.toml.
#include <iomanip>
#include <iostream>

#include "command.hpp"
#include "sapling/internal/data_registry.hpp"
#include "sapling/error.hpp"

namespace sapling::cli::data_command {  // one namespace per command: the CLI is a unity build
namespace {

std::string human_size(uint64_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  if (bytes >= (1ULL << 20)) os << static_cast<double>(bytes) / (1 << 20) << " MiB";
  else os << static_cast<double>(bytes) / 1024 << " KiB";
  return os.str();
}

const char* status_name(DataStatus status) {
  switch (status) {
    case DataStatus::Present: return "present";
    case DataStatus::Partial: return "partial";
    case DataStatus::Absent: break;
  }
  return "absent";
}

void list(const DataManifest& manifest, const std::filesystem::path& data_dir, bool verbose) {
  std::cout << "data folder: " << data_dir.string() << "\n";
  for (const auto& set : manifest.data_sets()) {
    std::cout << "  " << std::left << std::setw(22) << set.name << std::setw(9) << status_name(data_set_status(set, data_dir))
              << std::right << std::setw(10) << human_size(set.bytes) << std::setw(6) << set.files.size() << " files  "
              << set.summary << "\n";
    if (verbose)
      std::cout << "      path " << set.path << "\n      licence " << set.licence << "\n      citation " << set.citation
                << "\n      source " << set.source << "\n";
  }
}

int run(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_common_options(desc);
  desc.add_options()("action", po::value<std::string>(), "list | fetch | verify")(
      "names", po::value<std::vector<std::string>>(), "data set names (fetch, verify)")(
      "to", po::value<std::string>(), "data folder (default: $SAPLING_DATA_DIR, else ~/.local/share/sapling)")(
      "mirror", po::value<std::string>(), "local mirror to copy from (default: $SAPLING_DATA_MIRROR)")(
      "manifest", po::value<std::string>(), "manifest file (default: the one shipped with sapling)")(
      "verbose,v", "list: also show path, licence, citation and source");
  po::positional_options_description pos;
  pos.add("action", 1).add("names", -1);
  po::variables_map vm;
  const std::string usage =
      "usage: sapling data list [--to DIR] [-v]\n"
      "       sapling data fetch NAME... [--to DIR] [--mirror DIR]\n"
      "       sapling data verify NAME... [--to DIR]";
  if (!parse_args(args, desc, pos, vm, usage)) return 0;
  apply_common_options(vm);
  if (!vm.count("action")) fail("missing action\n", usage);
  const std::string action = vm["action"].as<std::string>();
  const auto manifest = DataManifest::load(vm.count("manifest") ? std::filesystem::path(vm["manifest"].as<std::string>())
                                                                : shipped_manifest());
  const std::filesystem::path data_dir = vm.count("to") ? std::filesystem::path(vm["to"].as<std::string>()) : default_data_dir();
  const auto names = vm.count("names") ? vm["names"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (action == "list") {
    if (!names.empty()) fail("data list takes no names");
    list(manifest, data_dir, vm.count("verbose") != 0);
    return 0;
  }
  if (action != "fetch" && action != "verify") fail("unknown action '", action, "' (expected: list, fetch, verify)");
  if (names.empty()) fail("data ", action, ": name at least one data set (see `sapling data list`)");
  std::vector<const DataSet*> sets;
  for (const auto& name : names) sets.push_back(&manifest.find(name));  // every name checked before any work
  int status = 0;
  for (const auto* set : sets) {
    if (action == "fetch") {
      const auto mirror = vm.count("mirror") ? std::filesystem::path(vm["mirror"].as<std::string>()) : environment_data_mirror();
      const auto report = fetch_data_set(*set, mirror, data_dir);
      std::cout << set->name << ": " << report.copied << " copied (" << human_size(report.bytes_copied) << "), "
                << report.already_present << " already present, all " << set->files.size() << " verified -> "
                << (data_dir / set->path).string() << "\n";
    } else {
      const auto problems = verify_data_set(*set, data_dir);
      for (const auto& p : problems) std::cerr << "error: " << p << "\n";
      std::cout << set->name << ": " << (problems.empty() ? "all " + std::to_string(set->files.size()) + " files verified"
                                                           : std::to_string(problems.size()) + " problem(s)")
                << "\n";
      if (!problems.empty()) status = 1;
    }
  }
  return status;
}

Register reg("data", "list, fetch (from a local mirror, checksum-verified) and verify the named data sets", run);

}  // namespace
}  // namespace sapling::cli::data_command
