// Finding structure files (.pdb/.ent/.cif/.mmcif, optionally gzipped) in input files and folders.
#include <algorithm>
#include <cctype>
#include <system_error>

#include "sapling/error.hpp"
#include "sapling/structure_io.hpp"

namespace sapling {

namespace fs = std::filesystem;

bool has_structure_extension(const fs::path& file) {
  std::string name = file.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto ends_with = [&](const std::string& suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".gz")) name.resize(name.size() - 3);
  return ends_with(".pdb") || ends_with(".ent") || ends_with(".cif") || ends_with(".mmcif");
}

std::vector<fs::path> find_structure_files(const std::vector<fs::path>& inputs) {
  std::vector<fs::path> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    const auto status = fs::status(input, ec);
    if (ec || !fs::exists(status)) fail(input.string(), ": no such file or folder");
    if (!fs::is_directory(status)) {
      files.push_back(input);
      continue;
    }
    std::vector<fs::path> found;
    const auto walk_options = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
    for (fs::recursive_directory_iterator it(input, walk_options, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file(ec) && has_structure_extension(it->path())) found.push_back(it->path());
    if (ec) fail(input.string(), ": cannot list folder: ", ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace sapling
