// Data-set manifest reading, SHA-256 checksums, and verified copies from a local mirror.
#include "sapling/internal/data_registry.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/options.hpp"
#include "sapling/internal/toml_location.hpp"

namespace sapling {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStampFolder = ".sapling-data";

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

bool is_hex_digest(const std::string& text) {
  if (text.size() != 64) return false;
  for (const char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  return true;
}

// A path inside a data set must stay inside it: relative, no "..", no empty parts.
bool is_contained(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  for (const auto& part : fs::path(path))
    if (part == ".." || part == ".") return false;
  return true;
}

// `sha256sum` output: "<64 hex>  <path>" per line (two spaces, or " *" for binary mode).
std::vector<DataFile> read_checksum_list(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail(file.string(), ": cannot open the checksum list");
  std::vector<DataFile> out;
  std::set<std::string> seen;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    if (line.size() < 67 || (line.compare(64, 2, "  ") != 0 && line.compare(64, 2, " *") != 0))
      fail(where, ": expected '<sha256>  <path>' (sha256sum format), got '", line.substr(0, 80), "'");
    DataFile entry{line.substr(66), line.substr(0, 64)};
    if (!is_hex_digest(entry.sha256)) fail(where, ": '", entry.sha256, "' is not a lower-case hex SHA-256");
    if (!is_contained(entry.path)) fail(where, ": path '", entry.path, "' must be relative and stay inside the data set");
    if (!seen.insert(entry.path).second) fail(where, ": '", entry.path, "' is listed twice");
    out.push_back(std::move(entry));
  }
  if (out.empty()) fail(file.string(), ": the checksum list names no file");
  return out;
}

std::string required_string(const toml::table& table, const std::string& key, const std::string& where) {
  const auto* node = table.get(key);
  if (!node) fail(where, ": missing key '", key, "'");
  const auto value = node->value<std::string>();
  if (!value || value->empty()) fail(toml_location(node->source()), ": key '", key, "' must be a non-empty string");
  return *value;
}

fs::path stamp_path(const DataSet& data_set, const fs::path& data_dir) {
  return data_dir / kStampFolder / (data_set.name + ".verified");
}

// The stamp records the checksum list it was verified against, so a changed manifest re-fetches.
std::string stamp_text(const DataSet& data_set) { return sha256_of_file(data_set.checksum_file) + "\n"; }

struct DigestContext {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

DataManifest DataManifest::load(const fs::path& manifest) {
  toml::table root;
  try {
    root = toml::parse_file(manifest.string());
  } catch (const toml::parse_error& e) {
    fail(manifest.string(), ":", e.source().begin.line, ": ", e.description());
  }
  DataManifest out;
  out.path_ = manifest;
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    const auto* table = node.as_table();
    if (!table) fail(toml_location(node.source()), ": '", name, "' must be a table ([", name, "])");
    const std::string where = toml_location(node.source()) + ": [" + name + "]";
    DataSet set;
    set.name = name;
    set.summary = required_string(*table, "summary", where);
    set.path = required_string(*table, "path", where);
    if (!is_contained(set.path)) fail(where, ": path '", set.path, "' must be relative, without '..'");
    set.licence = required_string(*table, "licence", where);
    set.citation = required_string(*table, "citation", where);
    set.source = required_string(*table, "source", where);
    const auto* bytes = table->get("bytes");
    if (!bytes || !bytes->is_integer() || bytes->value<int64_t>().value_or(-1) < 0)
      fail(where, ": key 'bytes' must be a non-negative integer (the data set's total size)");
    set.bytes = static_cast<uint64_t>(*bytes->value<int64_t>());
    set.checksum_file = manifest.parent_path() / required_string(*table, "checksums", where);
    set.files = read_checksum_list(set.checksum_file);
    for (const auto& [k, v] : *table) {
      static const std::set<std::string> known{"summary", "path", "include", "licence", "citation", "source", "bytes", "checksums"};
      if (!known.count(std::string(k.str())))
        fail(toml_location(v.source()), ": [", name, "] unknown key '", k.str(), "'",
             did_you_mean(std::string(k.str()), {known.begin(), known.end()}));
    }
    out.data_sets_.push_back(std::move(set));
  }
  if (out.data_sets_.empty()) fail(manifest.string(), ": the manifest names no data set");
  return out;
}

const DataSet& DataManifest::find(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& set : data_sets_) {
    if (set.name == name) return set;
    names.push_back(set.name);
  }
  std::string all;
  for (const auto& n : names) all += " " + n;
  fail("no data set named '", name, "' in ", path_.string(), did_you_mean(name, names), " (known:", all, ")");
}

fs::path shipped_manifest() {
  std::error_code ec;
  const fs::path here = fs::path(boost::dll::program_location(ec).string()).parent_path();
  // build/sapling in a checkout; bin/sapling in an installed prefix.
  for (const auto& candidate : {here.parent_path() / "datasets/manifest.toml", here.parent_path() / "share/sapling/datasets/manifest.toml"})
    if (fs::is_regular_file(candidate)) return candidate;
  fail("cannot find datasets/manifest.toml next to ", here.string(), " (pass --manifest FILE)");
}

fs::path default_data_dir() {
  if (const auto dir = environment("SAPLING_DATA_DIR"); !dir.empty()) return dir;
  if (const auto xdg = environment("XDG_DATA_HOME"); !xdg.empty()) return fs::path(xdg) / "sapling";
  if (const auto home = environment("HOME"); !home.empty()) return fs::path(home) / ".local/share/sapling";
  fail("no data folder: set SAPLING_DATA_DIR (or HOME) or pass --to DIR");
}

fs::path environment_data_mirror() { return environment("SAPLING_DATA_MIRROR"); }

std::string sha256_of_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), ": cannot open for reading");
  DigestContext digest;
  if (!digest.ctx || EVP_DigestInit_ex(digest.ctx, EVP_sha256(), nullptr) != 1) fail("SHA-256: OpenSSL initialisation failed");
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(digest.ctx, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) fail(file.string(), ": read error while hashing");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(digest.ctx, md, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) out += {hex[md[i] >> 4], hex[md[i] & 15]};
  return out;
}

DataStatus data_set_status(const DataSet& data_set, const fs::path& data_dir) {
  std::error_code ec;
  const auto stamp = stamp_path(data_set, data_dir);
  if (fs::is_regular_file(stamp, ec) && read_file(stamp) == stamp_text(data_set)) return DataStatus::Present;
  for (const auto& file : data_set.files)
    if (fs::exists(data_dir / data_set.path / file.path, ec)) return DataStatus::Partial;
  return DataStatus::Absent;
}

DataFetchReport fetch_data_set(const DataSet& data_set, const fs::path& mirror, const fs::path& data_dir) {
  if (mirror.empty())
    fail("data set '", data_set.name, "': no mirror given. This build copies data from a local mirror (--mirror DIR or ",
         "SAPLING_DATA_MIRROR, laid out as the manifest's paths); it has no network download. Public source: ", data_set.source);
  if (!fs::is_directory(mirror)) fail("data mirror ", mirror.string(), " is not a folder");
  if (fs::weakly_canonical(mirror) == fs::weakly_canonical(data_dir))
    fail("data set '", data_set.name, "': the mirror and the destination are the same folder (", mirror.string(), ")");
  DataFetchReport report;
  const auto source_root = mirror / data_set.path;
  const auto target_root = data_dir / data_set.path;
  for (size_t i = 0; i < data_set.files.size(); ++i) {
    const auto& file = data_set.files[i];
    const auto target = target_root / file.path;
    std::error_code ec;
    if (fs::is_regular_file(target, ec) && sha256_of_file(target) == file.sha256) {
      ++report.already_present;
      continue;
    }
    const auto source = source_root / file.path;
    if (!fs::is_regular_file(source, ec))
      fail("data set '", data_set.name, "': the mirror has no ", source.string(), " (file ", i + 1, " of ",
           data_set.files.size(), " in ", data_set.checksum_file.string(), ")");
    fs::create_directories(target.parent_path());
    // Copied under a temporary name and renamed only once its checksum matches: an interrupted or corrupt
    // copy is never found under the final name.
    const auto staging = target.parent_path() / ("." + target.filename().string() + ".part" + std::to_string(::getpid()));
    fs::copy_file(source, staging, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(source.string(), ": cannot copy to ", staging.string(), ": ", ec.message());
    const auto actual = sha256_of_file(staging);
    if (actual != file.sha256) {
      fs::remove(staging, ec);
      fail(source.string(), ": checksum mismatch (expected ", file.sha256, ", got ", actual,
           "): the mirror's copy is corrupt or another version; nothing was written for it");
    }
    fs::rename(staging, target, ec);
    if (ec) fail(target.string(), ": cannot move the verified copy into place: ", ec.message());
    ++report.copied;
    report.bytes_copied += fs::file_size(target);
  }
  fs::create_directories(data_dir / kStampFolder);
  write_file_atomic(stamp_path(data_set, data_dir), stamp_text(data_set));
  return report;
}

std::vector<std::string> verify_data_set(const DataSet& data_set, const fs::path& data_dir) {
  std::vector<std::string> problems;
  for (const auto& file : data_set.files) {
    const auto path = data_dir / data_set.path / file.path;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      problems.push_back(path.string() + ": missing");
      continue;
    }
    const auto actual = sha256_of_file(path);
    if (actual != file.sha256) problems.push_back(path.string() + ": checksum " + actual + ", expected " + file.sha256);
  }
  if (!problems.empty()) {
    std::error_code ec;
    fs::remove(stamp_path(data_set, data_dir), ec);  // no longer verified
  }
  return problems;
}

}  // namespace sapling
