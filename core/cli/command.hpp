// Subcommand table and helpers shared by the one-file-per-subcommand CLI sources.
#pragma once
#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

namespace sapling::cli {

namespace po = boost::program_options;

struct Command {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>& args)> run;
};

std::vector<Command>& commands();

// Each subcommand file defines one static Register object.
struct Register {
  Register(std::string name, std::string summary, std::function<int(const std::vector<std::string>&)> run);
};

// Options every subcommand accepts: --help, --threads, --quiet.
void add_common_options(po::options_description& desc);
// Parses `args`; prints help and returns false when --help was given.
// Throws sapling::Error for unknown or malformed options.
bool parse_args(const std::vector<std::string>& args, const po::options_description& desc,
                const po::positional_options_description& positional, po::variables_map& vm, const std::string& usage);
// Applies --threads (default: every core) and --quiet.
void apply_common_options(const po::variables_map& vm);
// --encoder NAME (the sequence encoder of a model folder, default: from its config.json) and its old name
// --plugin, still read with a warning in sapling 0.2.
void add_encoder_option(po::options_description& desc);
std::string encoder_option(const po::variables_map& vm);
// --device: "cpu" or "cuda[:N]" as a device; anything else fails naming the value. (Whether CUDA is there is
// each command's own check: `sapling bench` leaves it to its cells.)
torch::Device parse_device(const std::string& name);
// Loads the plugin search path plus `extra` folders; warns once about each library that failed to load.
void load_plugins(const std::vector<std::string>& extra = {}, bool report_failures = true);

}  // namespace sapling::cli
