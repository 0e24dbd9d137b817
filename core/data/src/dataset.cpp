// Structure dataset shards: writing (atomic shards, index last) and memory-mapped reading.
#include "sapling/dataset.hpp"

#include "dataset_index.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iomanip>
#include <set>
#include <sstream>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/safetensors.hpp"

namespace sapling {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json to_json(const ChainMetadata& m) {
  return json{{"entry", m.entry},       {"chain", m.chain},   {"method", m.method},     {"resolution", m.resolution},
              {"r_free", m.r_free},     {"split", m.split},   {"group", m.group},       {"source", m.source},
              {"length", m.length},     {"observed", m.observed}, {"high_quality", m.high_quality},
              {"input_index", m.input_index}};
}

ChainMetadata metadata_from_json(const json& j, const std::string& where) {
  try {
    ChainMetadata m;
    m.entry = j.at("entry").get<std::string>();
    m.chain = j.at("chain").get<std::string>();
    m.method = j.value("method", "");
    m.resolution = j.value("resolution", 0.0);
    m.r_free = j.value("r_free", 0.0);
    m.split = j.value("split", "");
    m.group = j.value("group", "");
    m.source = j.value("source", "");
    m.length = j.at("length").get<int64_t>();
    m.observed = j.value("observed", int64_t{0});
    m.high_quality = j.value("high_quality", false);
    m.input_index = j.value("input_index", int64_t{-1});
    return m;
  } catch (const json::exception& e) {
    fail(where, ": bad chain metadata: ", e.what());
  }
}

std::string shard_name(size_t index) {
  std::ostringstream os;
  os << "shard-" << std::setw(5) << std::setfill('0') << index << ".safetensors";
  return os.str();
}

uint64_t fnv1a(const std::string& text, uint64_t hash = 1469598103934665603ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

// splitmix64 finaliser: spreads FNV's weak low bits over the whole word.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

bool is_high_quality(const std::string& method, double resolution) {
  return method.find("X-RAY") != std::string::npos && resolution > 0 && resolution <= 2.0;
}

std::string split_group(const std::string& entry, SplitBy by) {
  if (by == SplitBy::Entry) return entry;
  const size_t cut = entry.find_first_of("_.");
  std::string group = cut == std::string::npos || cut == 0 ? entry : entry.substr(0, cut);
  // A name that starts with a PDB id groups by the id alone, upper-cased:
  // BM5 has both "1IRA" and "1IRAtrunc" (the same complex), PSICOV "1a3a".
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (group.size() >= 4 && std::isdigit(static_cast<unsigned char>(group[0])) && alnum(group[1]) && alnum(group[2]) &&
      alnum(group[3])) {
    group.resize(4);
    std::transform(group.begin(), group.end(), group.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  }
  return group;
}

std::string assign_split(const std::string& group, double valid_fraction, uint64_t seed, double reference_fraction) {
  const uint64_t h = mix(fnv1a(group, fnv1a(std::to_string(seed))));
  const double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // 53 bits -> [0, 1)
  if (u < valid_fraction) return "valid";
  if (u < valid_fraction + reference_fraction)
    return (u - valid_fraction) < valid_fraction * reference_fraction ? "reference_valid" : "reference_train";
  return "train";
}

// ---------------------------------------------------------------- writer

namespace {

constexpr const char* kJournalFile = "prepare.journal";

// "shard-00042.safetensors" -> 42; -1 for any other name (a part's subfolder included).
int64_t top_level_shard_number(const std::string& file) {
  if (file.size() != 23 || file.rfind("shard-", 0) != 0 || file.substr(11) != ".safetensors") return -1;
  for (size_t i = 6; i < 11; ++i)
    if (!std::isdigit(static_cast<unsigned char>(file[i]))) return -1;
  return std::stoll(file.substr(6, 5));
}

}  // namespace

std::string differing_keys(const json& a, const json& b, const std::string& prefix) {
  std::string out;
  auto note = [&](const std::string& text) { out += (out.empty() ? "" : ", ") + text; };
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key)) note(prefix + key);
    else if (value.is_object() && b.at(key).is_object()) {
      const std::string inner = differing_keys(value, b.at(key), prefix + key + ".");
      if (!inner.empty()) note(inner);
    } else if (b.at(key) != value) {
      note(prefix + key + " " + value.dump() + " -> " + b.at(key).dump());
    }
  }
  for (const auto& [key, value] : b.items())
    if (!a.contains(key)) note(prefix + key);
  return out;
}

struct StructureDatasetWriter::State {
  fs::path dir;
  DatasetWriterOptions options;
  int has_tokens = -1;  // -1 unknown until the first chain, then 0/1
  int64_t embedding_dim = -1;
  // The shard being filled.
  std::vector<torch::Tensor> sequence, coords, observed, bfactor, tokens, embeddings;
  std::vector<int64_t> offsets{0};
  std::vector<ChainMetadata> shard_chains;
  // Everything written so far (and carried over from the dataset an update extends).
  std::vector<std::string> all_chains;  // each chain's index entry as compact JSON (a JSON tree per chain costs ~1 KB)
  json shards = json::array();
  int64_t residues = 0;
  int64_t next_shard_number = 0;
  std::vector<std::string> resumed_progress;
  bool finished = false;
};

StructureDatasetWriter::StructureDatasetWriter(const fs::path& dir, DatasetWriterOptions options)
    : state_(std::make_unique<State>()) {
  if (options.shard_size < 1) fail("dataset ", dir.string(), ": shard size must be at least 1");
  ensure_writable_dir(dir);
  state_->dir = dir;
  state_->options = std::move(options);
  if (state_->options.update) {
    carry_over_existing();
  } else {
    // An index left from an earlier dataset would describe shards this writer
    // overwrites: remove it now so an interrupted run leaves no valid-looking index.
    std::error_code ec;
    fs::remove(dir / "index.json", ec);
    if (ec) fail(dir.string(), ": cannot remove the old index.json: ", ec.message());
  }
  if (!state_->options.journal_settings.empty()) resume_from_journal();
}

StructureDatasetWriter::~StructureDatasetWriter() = default;

void StructureDatasetWriter::carry_over_existing() {
  State& s = *state_;
  const fs::path index_path = s.dir / "index.json";
  if (!fs::exists(index_path)) fail(s.dir.string(), ": no dataset to update (no index.json)");
  StructureDataset existing(s.dir);  // validates the shards before anything is built on them
  const json index = read_index_without_chains(index_path);
  const std::set<std::string> replaced(s.options.replace_sources.begin(), s.options.replace_sources.end());
  s.shards = index.at("shards");
  for (const auto& shard : s.shards)
    s.next_shard_number = std::max(s.next_shard_number, top_level_shard_number(shard.at("file")) + 1);
  s.has_tokens = existing.has_tokens() ? 1 : 0;
  s.embedding_dim = existing.embedding_dim();
  for (size_t i = 0; i < existing.size(); ++i) {
    const ChainMetadata& m = existing.metadata(i);
    if (replaced.count(fs::path(m.source).filename().string())) continue;
    s.residues += m.length;
    s.all_chains.push_back(chain_index_entry(m, existing.location(i).first, existing.location(i).second));
  }
}

void StructureDatasetWriter::resume_from_journal() {
  State& s = *state_;
  const fs::path path = s.dir / kJournalFile;
  const json settings = json::parse(s.options.journal_settings);
  // The journal is written again with what is kept: the header, then the lines of the shards carried on (a torn
  // last line, or the line of a shard that is gone, is dropped and its shard redone).
  std::string text = json{{"settings", settings}}.dump() + "\n";
  if (fs::exists(path)) {
    std::istringstream lines(read_file(path));
    std::string line;
    std::getline(lines, line);
    json header;
    try {
      header = json::parse(line);
    } catch (const json::exception&) {
    }
    if (!header.contains("settings")) fail(path.string(), ": not a prepare journal; remove it or pass --restart");
    // A journal without a shard holds no work: other settings simply start afresh.
    const bool has_shards = lines.peek() != std::char_traits<char>::eof();
    if (header.at("settings") != settings && has_shards)
      fail(s.dir.string(), " holds an interrupted prepare with other settings (", differing_keys(header.at("settings"), settings),
           "): run the same command to resume it, or pass --restart to discard it");
    while (header.at("settings") == settings && std::getline(lines, line)) {
      json entry;
      try {
        entry = json::parse(line);
      } catch (const json::exception&) {
        break;  // the line being written when the run was killed: its shard is redone
      }
      const json& shard = entry.at("shard");
      if (!fs::exists(s.dir / shard.at("file").get<std::string>())) break;
      const size_t index = s.shards.size();
      s.shards.push_back(shard);
      for (json chain : entry.at("chains")) {
        chain["shard"] = index;
        s.all_chains.push_back(chain.dump());
      }
      s.residues += shard.at("residues").get<int64_t>();
      s.has_tokens = entry.at("has_tokens").get<bool>() ? 1 : 0;
      s.embedding_dim = entry.at("embedding_dim").get<int64_t>();
      s.next_shard_number = std::max(s.next_shard_number, top_level_shard_number(shard.at("file")) + 1);
      s.resumed_progress.push_back(entry.at("progress").dump());
      text += line + "\n";
    }
  }
  write_file_atomic(path, text);
}

const std::vector<std::string>& StructureDatasetWriter::resumed_progress() const { return state_->resumed_progress; }

int64_t StructureDatasetWriter::chains_written() const {
  return static_cast<int64_t>(state_->all_chains.size() + state_->shard_chains.size());
}

void StructureDatasetWriter::add(const ChainStructure& chain, ChainMetadata metadata, const torch::Tensor& tokens,
                                 const torch::Tensor& embeddings) {
  State& s = *state_;
  if (s.finished) fail("dataset ", s.dir.string(), ": add() after finish()");
  const int64_t L = chain.length();
  const std::string who = chain.label();
  if (L == 0) fail(who, ": empty chain");
  if (!chain.coords.defined() || chain.coords.sizes() != torch::IntArrayRef({L, kNumBackboneAtoms, 3}))
    fail(who, ": coords must be [", L, ", 5, 3]");
  if (!chain.observed.defined() || chain.observed.numel() != L) fail(who, ": observed must have ", L, " entries");
  if (!chain.bfactor.defined() || chain.bfactor.numel() != L) fail(who, ": bfactor must have ", L, " entries");
  const int with_tokens = tokens.defined() ? 1 : 0;
  if (s.has_tokens == -1) s.has_tokens = with_tokens;
  if (s.has_tokens != with_tokens)
    fail(who, ": either every chain has structure tokens or none",
         s.options.update ? " (the dataset being updated was prepared " + std::string(s.has_tokens ? "with" : "without") +
                                " --tokenizer)"
                          : "");
  const int64_t dim = embeddings.defined() ? embeddings.size(-1) : 0;
  if (s.embedding_dim == -1) s.embedding_dim = dim;
  if (s.embedding_dim != dim) fail(who, ": embedding width ", dim, " differs from ", s.embedding_dim);
  if (with_tokens && tokens.numel() != L) fail(who, ": ", tokens.numel(), " structure tokens for ", L, " residues");
  if (dim && (embeddings.dim() != 2 || embeddings.size(0) != L))
    fail(who, ": embeddings must be [", L, ", D]");

  std::vector<uint8_t> codes(chain.sequence.begin(), chain.sequence.end());
  s.sequence.push_back(torch::tensor(codes, torch::kUInt8));
  s.coords.push_back(chain.coords.to(torch::kCPU, torch::kFloat32).contiguous());
  s.observed.push_back(chain.observed.to(torch::kCPU, torch::kBool).reshape({L}));
  s.bfactor.push_back(chain.bfactor.to(torch::kCPU, torch::kFloat32).reshape({L}));
  if (with_tokens) {
    const auto t = tokens.to(torch::kCPU, torch::kInt64).reshape({L});
    if (t.numel() && (t.min().item<int64_t>() < INT16_MIN || t.max().item<int64_t>() > INT16_MAX))
      fail(who, ": structure token out of int16 range");
    s.tokens.push_back(t.to(torch::kInt16));
  }
  if (dim) s.embeddings.push_back(embeddings.to(torch::kCPU, torch::kFloat16).contiguous());
  s.offsets.push_back(s.offsets.back() + L);
  metadata.entry = chain.entry;
  metadata.chain = chain.chain;
  metadata.method = chain.method;
  metadata.resolution = chain.resolution;
  metadata.r_free = chain.r_free;
  metadata.length = L;
  metadata.observed = chain.observed.to(torch::kBool).sum().item<int64_t>();
  s.shard_chains.push_back(std::move(metadata));
  if (s.options.flush_when_full && static_cast<int64_t>(s.shard_chains.size()) >= s.options.shard_size) flush_shard();
}

bool StructureDatasetWriter::flush_if_full(const std::string& progress_json) {
  if (static_cast<int64_t>(state_->shard_chains.size()) < state_->options.shard_size) return false;
  flush_shard(progress_json);
  return true;
}

void StructureDatasetWriter::flush_shard(const std::string& progress_json) {
  State& s = *state_;
  if (s.shard_chains.empty()) return;
  const size_t index = s.shards.size();
  const std::string name = shard_name(static_cast<size_t>(s.next_shard_number));
  NamedTensors tensors = {
      {"offsets", torch::tensor(s.offsets, torch::kInt64)},
      {"sequence", torch::cat(s.sequence)},
      {"coords", torch::cat(s.coords)},
      {"observed", torch::cat(s.observed)},
      {"bfactor", torch::cat(s.bfactor)},
  };
  if (s.has_tokens == 1) tensors.emplace_back("tokens", torch::cat(s.tokens));
  if (s.embedding_dim > 0) tensors.emplace_back("embeddings", torch::cat(s.embeddings));
  json chains = json::array();
  for (const auto& m : s.shard_chains) chains.push_back(to_json(m));
  save_safetensors(s.dir / name, tensors,
                   {{"format", kDatasetFormat}, {"version", std::to_string(kDatasetVersion)}, {"chains", chains.dump()}});
  const int64_t residues = s.offsets.back();
  const json shard{{"file", name}, {"chains", chains.size()}, {"residues", residues}};
  for (size_t row = 0; row < chains.size(); ++row) {
    chains[row]["shard"] = index;
    chains[row]["row"] = row;
  }
  if (!s.options.journal_settings.empty()) {
    // One line per shard, written after the shard itself: a shard without its line is redone.
    const json entry{{"shard", shard},
                     {"chains", chains},
                     {"has_tokens", s.has_tokens == 1},
                     {"embedding_dim", std::max<int64_t>(0, s.embedding_dim)},
                     {"progress", json::parse(progress_json)}};
    append_file_synced(s.dir / kJournalFile, entry.dump() + "\n");
  }
  s.shards.push_back(shard);
  for (const auto& c : chains) s.all_chains.push_back(c.dump());
  ++s.next_shard_number;
  s.residues += residues;
  s.sequence.clear();
  s.coords.clear();
  s.observed.clear();
  s.bfactor.clear();
  s.tokens.clear();
  s.embeddings.clear();
  s.offsets.assign(1, 0);
  s.shard_chains.clear();
}

void StructureDatasetWriter::finish(const std::string& extra_json) {
  State& s = *state_;
  if (s.finished) return;
  flush_shard();
  json index{{"format", kDatasetFormat},
             {"version", kDatasetVersion},
             {"chains_total", s.all_chains.size()},
             {"residues_total", s.residues},
             {"has_tokens", s.has_tokens == 1},
             {"embedding_dim", std::max<int64_t>(0, s.embedding_dim)},
             {"tokenizer", s.has_tokens == 1 ? s.options.tokenizer : ""},
             {"tokenizer_options", s.has_tokens == 1 ? s.options.tokenizer_options : std::vector<std::string>{}},
             {"token_states", s.has_tokens == 1 ? static_cast<int64_t>(s.options.token_symbols.size()) : int64_t{0}},
             {"token_symbols", s.has_tokens == 1 ? s.options.token_symbols : std::vector<std::string>{}},
             {"token_mask_state", s.options.token_mask_state},
             {"shards", s.shards}};
  if (!extra_json.empty()) {
    try {
      index["prepare"] = json::parse(extra_json);
    } catch (const json::exception& e) {
      fail("dataset ", s.dir.string(), ": extra index information is not JSON: ", e.what());
    }
  }
  write_dataset_index(s.dir, index, s.all_chains);
  std::error_code ec;
  fs::remove(s.dir / kJournalFile, ec);
  s.finished = true;
}

std::string chain_index_entry(const ChainMetadata& m, size_t shard, size_t row) {
  json j = to_json(m);
  j["shard"] = shard;
  j["row"] = row;
  return j.dump();
}

json read_index_without_chains(const fs::path& index_path) {
  try {
    std::string top_key;
    json::parser_callback_t skip_chains = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key) top_key = parsed.get<std::string>();
      return !(depth == 2 && top_key == "chains" && event == json::parse_event_t::object_end);
    };
    return json::parse(read_file(index_path), skip_chains);
  } catch (const json::exception& e) {
    fail(index_path.string(), ": invalid JSON: ", e.what());
  }
}

void write_dataset_index(const fs::path& dir, const json& header, const std::vector<std::string>& chains) {
  // One line per chain: readable, and a fraction of the size of a fully indented index.
  std::string text = "{\n";
  for (const auto& [key, value] : header.items()) {
    if (key == "chains") continue;
    text += json(key).dump() + ": ";
    if (key == "shards" && value.is_array()) {
      text += "[";
      for (size_t i = 0; i < value.size(); ++i) text += (i ? ",\n  " : "\n  ") + value[i].dump();
      text += value.empty() ? "]" : "\n ]";
    } else {
      text += value.dump();
    }
    text += ",\n";
  }
  text += "\"chains\": [";
  for (size_t i = 0; i < chains.size(); ++i) text += (i ? ",\n  " : "\n  ") + chains[i];
  text += chains.empty() ? "]" : "\n ]";
  text += "\n}\n";
  write_file_atomic(dir / "index.json", text);
  // Remove shards of an earlier dataset in this folder that the index does not name.
  std::set<std::string> named;
  for (const auto& shard : header.at("shards")) named.insert(shard.at("file").get<std::string>());
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string file = e.path().filename().string();
    if (file.rfind("shard-", 0) != 0 || e.path().extension() != ".safetensors") continue;
    if (!named.count(file)) fs::remove(e.path());
  }
}

// ---------------------------------------------------------------- reader

namespace {

struct Shard {
  std::unique_ptr<SafetensorsFile> file;
  std::vector<int64_t> offsets;
  torch::Tensor sequence, coords, observed, bfactor, tokens, embeddings;
};

}  // namespace

struct StructureDataset::State {
  fs::path dir;
  std::vector<Shard> shards;
  std::vector<ChainMetadata> chains;
  std::vector<std::pair<size_t, size_t>> location;  // chain -> (shard, index within shard)
  bool has_tokens = false;
  int64_t embedding_dim = 0;
  std::string tokenizer;
  std::vector<std::string> token_symbols;
  std::vector<std::string> tokenizer_options;
  int64_t token_mask_state = -1;
};

StructureDataset::StructureDataset(const fs::path& dir) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.dir = dir;
  const fs::path index_path = dir / "index.json";
  if (!fs::exists(index_path))
    fail(dir.string(), ": not a structure dataset (no index.json; was `sapling prepare` interrupted?)");
  // A PDB-sized index lists about a million chains: each chain object becomes
  // ChainMetadata as soon as it is parsed and leaves the JSON tree, and the
  // "prepare" record (every input file) is skipped, so the tree never holds them.
  json index;
  std::vector<std::pair<int64_t, int64_t>> places;  // (shard, row) per chain; -1 where absent (version 1)
  try {
    std::string top_key;
    json::parser_callback_t keep = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key) {
        top_key = parsed.get<std::string>();
        return top_key != "prepare";
      }
      if (depth == 2 && top_key == "chains" && event == json::parse_event_t::object_end) {
        s.chains.push_back(metadata_from_json(parsed, index_path.string() + ": chains[" + std::to_string(s.chains.size()) + "]"));
        places.emplace_back(parsed.value("shard", int64_t{-1}), parsed.value("row", int64_t{-1}));
        return false;
      }
      return true;
    };
    index = json::parse(read_file(index_path), keep);
  } catch (const json::exception& e) {
    fail(index_path.string(), ": invalid JSON: ", e.what());
  }
  try {
    if (index.value("format", "") != kDatasetFormat)
      fail(index_path.string(), ": format is '", index.value("format", ""), "', expected '", kDatasetFormat, "'");
    if (index.value("version", 0) < 1 || index.value("version", 0) > kDatasetVersion)
      fail(index_path.string(), ": version ", index.value("version", 0), " (this build reads 1 to ", kDatasetVersion, ")");
    s.has_tokens = index.value("has_tokens", false);
    s.embedding_dim = index.value("embedding_dim", int64_t{0});
    s.tokenizer = index.value("tokenizer", "");
    s.token_symbols = index.value("token_symbols", std::vector<std::string>{});
    s.tokenizer_options = index.value("tokenizer_options", std::vector<std::string>{});
    if (s.has_tokens && index.contains("token_states") &&
        index.at("token_states").get<int64_t>() != static_cast<int64_t>(s.token_symbols.size()))
      fail(index_path.string(), ": token_states is ", index.at("token_states").get<int64_t>(), " but token_symbols lists ",
           s.token_symbols.size(), " symbols");
    s.token_mask_state = index.value("token_mask_state", int64_t{-1});
    const int version = index.at("version").get<int>();
    if (!index.contains("chains")) fail(index_path.string(), ": no 'chains' list");

    std::vector<size_t> shard_rows;
    for (const json& entry : index.at("shards")) {
      const fs::path relative = entry.at("file").get<std::string>();
      if (relative.is_absolute() || std::any_of(relative.begin(), relative.end(), [](const fs::path& p) { return p == ".."; }))
        fail(index_path.string(), ": shard file '", relative.string(), "' is not inside the dataset folder");
      const fs::path path = dir / relative;
      Shard shard;
      shard.file = std::make_unique<SafetensorsFile>(path);
      auto need = [&](const char* key) {
        if (!shard.file->contains(key)) fail(path.string(), ": missing tensor '", key, "'");
        return shard.file->get(key);
      };
      const torch::Tensor offsets = need("offsets").to(torch::kInt64).contiguous();
      shard.offsets.assign(offsets.data_ptr<int64_t>(), offsets.data_ptr<int64_t>() + offsets.numel());
      shard.sequence = need("sequence");
      shard.coords = need("coords");
      shard.observed = need("observed");
      shard.bfactor = need("bfactor");
      if (s.has_tokens) shard.tokens = need("tokens");
      if (s.embedding_dim > 0) shard.embeddings = need("embeddings");
      const size_t n = entry.at("chains").get<size_t>();
      const int64_t R = shard.sequence.numel();
      if (shard.offsets.size() != n + 1 || shard.offsets.front() != 0 || shard.offsets.back() != R)
        fail(path.string(), ": offsets do not match ", n, " chains and ", R, " residues");
      for (size_t k = 0; k < n; ++k)
        if (shard.offsets[k + 1] <= shard.offsets[k]) fail(path.string(), ": offsets not increasing at ", k);
      if (shard.sequence.scalar_type() != torch::kUInt8) fail(path.string(), ": sequence must be uint8");
      if (shard.coords.sizes() != torch::IntArrayRef({R, kNumBackboneAtoms, 3}) ||
          shard.coords.scalar_type() != torch::kFloat32)
        fail(path.string(), ": coords must be float32 [", R, ", 5, 3]");
      if (shard.observed.numel() != R || shard.observed.scalar_type() != torch::kBool)
        fail(path.string(), ": observed must be bool [", R, "]");
      if (shard.bfactor.numel() != R || shard.bfactor.scalar_type() != torch::kFloat32)
        fail(path.string(), ": bfactor must be float32 [", R, "]");
      if (s.has_tokens && shard.tokens.numel() != R) fail(path.string(), ": tokens must have ", R, " entries");
      if (s.embedding_dim > 0 && shard.embeddings.sizes() != torch::IntArrayRef({R, s.embedding_dim}))
        fail(path.string(), ": embeddings must be [", R, ", ", s.embedding_dim, "]");
      shard_rows.push_back(n);
      s.shards.push_back(std::move(shard));
    }
    if (version == 1) {
      // Chains in shard order, every row listed.
      for (size_t shard = 0, chain = 0; shard < shard_rows.size(); ++shard)
        for (size_t row = 0; row < shard_rows[shard]; ++row, ++chain) {
          if (chain >= s.chains.size()) fail(index_path.string(), ": shards hold more chains than listed");
          s.location.emplace_back(shard, row);
        }
      if (s.location.size() != s.chains.size())
        fail(index_path.string(), ": lists ", s.chains.size(), " chains but the shards hold ", s.location.size());
    } else {
      std::vector<std::vector<bool>> seen(shard_rows.size());
      for (size_t k = 0; k < shard_rows.size(); ++k) seen[k].assign(shard_rows[k], false);
      for (size_t k = 0; k < places.size(); ++k) {
        const auto [shard, row] = places[k];
        if (shard < 0 || row < 0 || static_cast<size_t>(shard) >= shard_rows.size() ||
            static_cast<size_t>(row) >= shard_rows[static_cast<size_t>(shard)])
          fail(index_path.string(), ": chains[", k, "] names shard ", shard, " row ", row, ", which does not exist");
        if (seen[static_cast<size_t>(shard)][static_cast<size_t>(row)])
          fail(index_path.string(), ": chains[", k, "] names shard ", shard, " row ", row, " a second time");
        seen[static_cast<size_t>(shard)][static_cast<size_t>(row)] = true;
        s.location.emplace_back(shard, row);
      }
    }
    for (size_t k = 0; k < s.chains.size(); ++k) {
      const auto [shard, row] = s.location[k];
      const auto& offsets = s.shards[shard].offsets;
      if (s.chains[k].length != offsets[row + 1] - offsets[row])
        fail(index_path.string(), ": chains[", k, "] (", s.chains[k].entry, " ", s.chains[k].chain, ") length ",
             s.chains[k].length, " differs from its row in ", index.at("shards").at(shard).at("file").get<std::string>());
    }
  } catch (const json::exception& e) {
    fail(index_path.string(), ": ", e.what());
  }
}

StructureDataset::~StructureDataset() = default;
StructureDataset::StructureDataset(StructureDataset&&) noexcept = default;
StructureDataset& StructureDataset::operator=(StructureDataset&&) noexcept = default;

const fs::path& StructureDataset::path() const { return state_->dir; }
size_t StructureDataset::size() const { return state_->chains.size(); }
bool StructureDataset::has_tokens() const { return state_->has_tokens; }
bool StructureDataset::has_embeddings() const { return state_->embedding_dim > 0; }
int64_t StructureDataset::embedding_dim() const { return state_->embedding_dim; }
const std::string& StructureDataset::tokenizer() const { return state_->tokenizer; }
const std::vector<std::string>& StructureDataset::token_symbols() const { return state_->token_symbols; }
const std::vector<std::string>& StructureDataset::tokenizer_options() const { return state_->tokenizer_options; }
int64_t StructureDataset::token_mask_state() const { return state_->token_mask_state; }

const ChainMetadata& StructureDataset::metadata(size_t i) const {
  if (i >= size()) fail(state_->dir.string(), ": chain index ", i, " out of range (", size(), " chains)");
  return state_->chains[i];
}

ChainStructure StructureDataset::chain(size_t i) const {
  const ChainMetadata& m = metadata(i);
  const auto [shard_index, k] = state_->location[i];
  const Shard& shard = state_->shards[shard_index];
  const int64_t begin = shard.offsets[k], end = shard.offsets[k + 1];
  ChainStructure c;
  c.entry = m.entry;
  c.chain = m.chain;
  c.method = m.method;
  c.resolution = m.resolution;
  c.r_free = m.r_free;
  const torch::Tensor codes = shard.sequence.slice(0, begin, end).contiguous();
  c.sequence.assign(reinterpret_cast<const char*>(codes.data_ptr<uint8_t>()), static_cast<size_t>(end - begin));
  c.coords = shard.coords.slice(0, begin, end);
  c.observed = shard.observed.slice(0, begin, end);
  c.bfactor = shard.bfactor.slice(0, begin, end);
  return c;
}

torch::Tensor StructureDataset::tokens(size_t i) const {
  metadata(i);
  if (!has_tokens()) fail(state_->dir.string(), ": dataset has no structure tokens (prepare with --tokenizer)");
  const auto [shard_index, k] = state_->location[i];
  const Shard& shard = state_->shards[shard_index];
  return shard.tokens.slice(0, shard.offsets[k], shard.offsets[k + 1]);
}

torch::Tensor StructureDataset::embeddings(size_t i) const {
  metadata(i);
  if (!has_embeddings()) fail(state_->dir.string(), ": dataset has no pGNN embeddings");
  const auto [shard_index, k] = state_->location[i];
  const Shard& shard = state_->shards[shard_index];
  return shard.embeddings.slice(0, shard.offsets[k], shard.offsets[k + 1]);
}

std::pair<size_t, size_t> StructureDataset::location(size_t i) const {
  metadata(i);
  return state_->location[i];
}

std::vector<size_t> StructureDataset::indices(const std::string& split) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < size(); ++i)
    if (state_->chains[i].split == split) out.push_back(i);
  return out;
}

}  // namespace sapling
