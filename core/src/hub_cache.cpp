// Hub ids resolved in the local Hugging Face cache (models--OWNER--NAME/refs/REV -> snapshots/HASH/).
#include "sapling/internal/hub_cache.hpp"

#include <cctype>
#include <cstdlib>
#include <regex>

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

namespace {

std::filesystem::path env_path(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? std::filesystem::path(value) : std::filesystem::path();
}

// "owner/name@rev" -> {"owner/name", "rev"} ("main" when no revision is given).
std::pair<std::string, std::string> split_revision(const std::string& id) {
  const auto at = id.find('@');
  if (at == std::string::npos) return {id, "main"};
  return {id.substr(0, at), id.substr(at + 1)};
}

bool is_commit_hash(const std::string& text) {
  static const std::regex hash("[0-9a-f]{40}");
  return std::regex_match(text, hash);
}

}  // namespace

bool looks_like_hub_id(const std::string& text) {
  static const std::regex id(R"([A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9_][A-Za-z0-9_.\-]*(@[A-Za-z0-9_.\-/]+)?)");
  return std::regex_match(text, id);
}

std::filesystem::path hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"})
    if (auto p = env_path(name); !p.empty()) return p;
  if (auto home = env_path("HF_HOME"); !home.empty()) return home / "hub";
  if (auto xdg = env_path("XDG_CACHE_HOME"); !xdg.empty()) return xdg / "huggingface" / "hub";
  return env_path("HOME") / ".cache" / "huggingface" / "hub";
}

std::optional<std::filesystem::path> find_hub_snapshot(const std::string& id) {
  if (!looks_like_hub_id(id)) return std::nullopt;
  const auto [repo, revision] = split_revision(id);
  const auto slash = repo.find('/');
  const auto repo_dir = hub_cache_dir() / ("models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1));
  std::string commit = revision;
  if (!is_commit_hash(revision)) {
    const auto ref = repo_dir / "refs" / revision;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ref, ec)) return std::nullopt;
    commit = read_file(ref);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
  }
  const auto snapshot = repo_dir / "snapshots" / commit;
  std::error_code ec;
  if (!std::filesystem::exists(snapshot / "config.json", ec)) return std::nullopt;
  return snapshot;
}

std::string hub_download_hint(const std::string& id) {
  const auto [repo, revision] = split_revision(id);
  const std::string revision_flag = revision == "main" ? "" : " --revision " + revision;
  return "'" + id + "' is not a folder, nor a model in the Hugging Face cache (" + hub_cache_dir().string() +
         "); sapling does not download: fetch it once with `hf download " + repo + revision_flag +
         "` (or `huggingface-cli download " + repo + revision_flag + "`), or set HF_HUB_CACHE / HF_HOME";
}

std::filesystem::path resolve_model_folder(const std::string& text, const std::filesystem::path& resolved) {
  std::error_code ec;
  if (std::filesystem::exists(resolved, ec) || !looks_like_hub_id(text)) return resolved;
  if (auto snapshot = find_hub_snapshot(text)) return *snapshot;
  fail(hub_download_hint(text));
}

}  // namespace sapling
