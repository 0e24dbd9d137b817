// Named data sets (datasets/manifest.toml): where they live, their checksums, and fetching them from a mirror.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/export.hpp"

namespace sapling {

// One file of a data set: its path inside the data set's folder and its SHA-256 (lower-case hex).
struct DataFile {
  std::string path;
  std::string sha256;
};

// One entry of the manifest. `path` is where the data set lives inside a data folder or a mirror
// (the same layout everywhere, e.g. "data/structures/bm5"); `files` come from its checksum list.
struct DataSet {
  std::string name;
  std::string summary;
  std::string path;
  std::string licence;
  std::string citation;
  std::string source;  // public source URL, for people building a mirror
  uint64_t bytes = 0;  // total size of `files`, as declared in the manifest
  std::filesystem::path checksum_file;
  std::vector<DataFile> files;
};

enum class DataStatus { Absent, Partial, Present };

class SAPLING_API DataManifest {
 public:
  // Reads the manifest and every checksum list it names; errors name the file and line or key.
  static DataManifest load(const std::filesystem::path& manifest);
  const std::vector<DataSet>& data_sets() const { return data_sets_; }
  // The named data set; an unknown name is an error listing close names.
  const DataSet& find(const std::string& name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<DataSet> data_sets_;
};

// The manifest shipped with this sapling: <repo>/datasets/manifest.toml beside a build folder, or
// <prefix>/share/sapling/datasets/manifest.toml for an installed one.
SAPLING_API std::filesystem::path shipped_manifest();

// Where `sapling data fetch` puts data by default: $SAPLING_DATA_DIR, else $XDG_DATA_HOME/sapling,
// else ~/.local/share/sapling.
SAPLING_API std::filesystem::path default_data_dir();

// The mirror named by $SAPLING_DATA_MIRROR, or an empty path.
SAPLING_API std::filesystem::path environment_data_mirror();

// Lower-case hex SHA-256 of a file's bytes (OpenSSL).
SAPLING_API std::string sha256_of_file(const std::filesystem::path& file);

// Present: fetched and verified (a stamp written by fetch_data_set matches the current checksum list);
// Partial: some of its files exist; Absent: none.
SAPLING_API DataStatus data_set_status(const DataSet& data_set, const std::filesystem::path& data_dir);

struct DataFetchReport {
  size_t copied = 0;
  size_t already_present = 0;
  uint64_t bytes_copied = 0;
};

// Copies every file of `data_set` from `mirror` into `data_dir` (same layout), verifying each checksum
// before it is renamed into place; files already present with the right checksum are kept. A missing or
// corrupt mirror file is an error naming it; nothing unverified is ever left under its final name.
SAPLING_API DataFetchReport fetch_data_set(const DataSet& data_set, const std::filesystem::path& mirror,
                                           const std::filesystem::path& data_dir);

// Re-hashes every file of a fetched data set; returns the problems found ("path: missing" or
// "path: checksum ..."), empty when all match.
SAPLING_API std::vector<std::string> verify_data_set(const DataSet& data_set, const std::filesystem::path& data_dir);

}  // namespace sapling
