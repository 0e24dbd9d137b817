// safetensors: strict header validation, memory-mapped reads, atomic writes, sharded indexes.
#include "sapling/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>  // for the header and the shard index

#include "sapling/error.hpp"
#include "sapling/files.hpp"

namespace sapling {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
  torch::ScalarType scalar;
};

const DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8, torch::kFloat64},  {DType::F32, "F32", 4, torch::kFloat32},
    {DType::F16, "F16", 2, torch::kFloat16},  {DType::BF16, "BF16", 2, torch::kBFloat16},
    {DType::I64, "I64", 8, torch::kInt64},    {DType::I32, "I32", 4, torch::kInt32},
    {DType::I16, "I16", 2, torch::kInt16},    {DType::I8, "I8", 1, torch::kInt8},
    {DType::U8, "U8", 1, torch::kUInt8},      {DType::BOOL, "BOOL", 1, torch::kBool},
};

const DTypeInfo& info_of(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d;
  fail("internal: unknown dtype");
}

// Largest header we accept: real checkpoints with tens of thousands of
// tensors stay far below this; it bounds the allocation for hostile files.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

}  // namespace

const char* dtype_name(DType dtype) { return info_of(dtype).name; }
size_t dtype_size(DType dtype) { return info_of(dtype).size; }
torch::ScalarType to_scalar_type(DType dtype) { return info_of(dtype).scalar; }

DType to_dtype(torch::ScalarType type) {
  for (const auto& d : kDTypes)
    if (d.scalar == type) return d.dtype;
  fail("safetensors cannot store tensors of type ", c10::toString(type));
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 8) fail(name, ": not a safetensors file (", size, " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];  // little endian
  if (header_len > size - 8)
    fail(name, ": header length ", header_len, " at byte 0 exceeds the file size (", size, " bytes)");
  if (header_len > kMaxHeaderBytes) fail(name, ": header length ", header_len, " is larger than the 100 MiB limit");
  SafetensorsHeader result;
  result.data_offset = 8 + header_len;
  const uint64_t data_size = size - result.data_offset;

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(data + 8, data + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(name, ": invalid JSON in header (bytes 8..", 8 + header_len, "): ", e.what());
  }
  if (!json.is_object()) fail(name, ": header must be a JSON object");

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::vector<std::string> range_names;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& key = it.key();
    const auto& value = it.value();
    if (key == "__metadata__") {
      if (!value.is_object()) fail(name, ": __metadata__ must be an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) fail(name, ": __metadata__ key '", m.key(), "' must be a string");
        result.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = name + ": tensor '" + key + "'";
    if (!value.is_object()) fail(where, ": entry must be an object");
    if (!value.contains("dtype") || !value["dtype"].is_string()) fail(where, ": missing string field 'dtype'");
    if (!value.contains("shape") || !value["shape"].is_array()) fail(where, ": missing array field 'shape'");
    if (!value.contains("data_offsets") || !value["data_offsets"].is_array() || value["data_offsets"].size() != 2)
      fail(where, ": missing field 'data_offsets' [begin, end]");
    TensorEntry entry;
    const std::string dtype = value["dtype"].get<std::string>();
    bool known = false;
    for (const auto& d : kDTypes)
      if (dtype == d.name) entry.dtype = d.dtype, known = true;
    if (!known) fail(where, ": unknown dtype '", dtype, "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
    // Element count with overflow checks: hostile shapes must not wrap around.
    uint64_t count = 1;
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_integer()) fail(where, ": shape entries must be integers");
      if (dim.is_number_unsigned() ? false : dim.get<int64_t>() < 0) fail(where, ": negative dimension in shape");
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where, ": dimension ", d, " is too large");
      if (d != 0 && count > std::numeric_limits<uint64_t>::max() / d) fail(where, ": shape overflows");
      count *= d;
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    const auto& offs = value["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      fail(where, ": data_offsets must be non-negative integers");
    entry.begin = offs[0].get<uint64_t>();
    entry.end = offs[1].get<uint64_t>();
    if (entry.end < entry.begin) fail(where, ": data_offsets end ", entry.end, " < begin ", entry.begin);
    if (entry.end > data_size)
      fail(where, ": data_offsets [", entry.begin, ", ", entry.end, "] outside the data area (", data_size, " bytes)");
    const size_t elem = dtype_size(entry.dtype);
    if (count > std::numeric_limits<uint64_t>::max() / elem || count * elem != entry.end - entry.begin)
      fail(where, ": byte count ", entry.end - entry.begin, " does not match shape x dtype size (", count, " x ", elem,
           ")");
    ranges.emplace_back(entry.begin, entry.end);
    range_names.push_back(key);
    result.tensors.emplace(key, std::move(entry));
  }
  // Overlap check over non-empty ranges, sorted by start.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t covered_end = 0;
  size_t covered_by = 0;
  bool any = false;
  for (size_t i : order) {
    if (ranges[i].first == ranges[i].second) continue;
    if (any && ranges[i].first < covered_end)
      fail(name, ": tensors '", range_names[covered_by], "' and '", range_names[i], "' overlap in the data area");
    if (ranges[i].second > covered_end) covered_end = ranges[i].second, covered_by = i;
    any = true;
  }
  return result;
}

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (address && size) munmap(address, size);
  }
};

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path), mapping_(std::make_shared<Mapping>()) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path.string(), ": not a regular file");
  }
  mapping_->size = static_cast<size_t>(st.st_size);
  if (mapping_->size > 0) {
    mapping_->address = mmap(nullptr, mapping_->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping_->address == MAP_FAILED) {
      mapping_->address = nullptr;
      ::close(fd);
      fail(path.string(), ": mmap failed: ", std::strerror(errno));
    }
  }
  ::close(fd);
  header_ = parse_safetensors_header(static_cast<const uint8_t*>(mapping_->address), mapping_->size, path.string());
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::contains(const std::string& name) const { return header_.tensors.count(name) != 0; }

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : header_.tensors) out.push_back(kv.first);
  return out;
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) fail(path_.string(), ": no tensor named '", name, "'");
  const TensorEntry& e = it->second;
  auto options = torch::TensorOptions().dtype(to_scalar_type(e.dtype));
  uint8_t* base = static_cast<uint8_t*>(mapping_->address) + header_.data_offset + e.begin;
  if (e.end == e.begin) return torch::empty(e.shape, options);
  if (reinterpret_cast<uintptr_t>(base) % dtype_size(e.dtype) != 0) {
    // Misaligned data (legal in the format): copy into an aligned tensor.
    auto out = torch::empty(e.shape, options);
    std::memcpy(out.data_ptr(), base, e.end - e.begin);
    return out;
  }
  auto keep_alive = mapping_;
  // The mapping is read-only (MAP_PRIVATE, PROT_READ): callers must not write
  // in place; model loaders copy_() into their own parameters.
  return torch::from_blob(
      base, e.shape, [keep_alive](void*) {}, options);
}

namespace {

std::filesystem::path resolve_checkpoint_file(const std::filesystem::path& path, bool& is_index) {
  namespace fs = std::filesystem;
  is_index = false;
  if (fs::is_regular_file(path)) {
    is_index = path.string().size() >= 5 && path.extension() == ".json";
    return path;
  }
  if (!fs::is_directory(path)) fail(path.string(), ": no such checkpoint file or folder");
  if (fs::exists(path / "model.safetensors")) return path / "model.safetensors";
  if (fs::exists(path / "model.safetensors.index.json")) {
    is_index = true;
    return path / "model.safetensors.index.json";
  }
  fail(path.string(), ": folder holds neither model.safetensors nor model.safetensors.index.json");
}

}  // namespace

TensorStore::TensorStore(const std::filesystem::path& path) : path_(path) {
  bool is_index = false;
  const auto file = resolve_checkpoint_file(path, is_index);
  if (!is_index) {
    files_.push_back(std::make_unique<SafetensorsFile>(file));
    for (const auto& kv : files_[0]->header().tensors) owner_[kv.first] = 0;
    return;
  }
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    fail(file.string(), ": invalid JSON: ", e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail(file.string(), ": expected an object with a 'weight_map' table");
  std::map<std::string, size_t> shard_index;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(file.string(), ": weight_map['", it.key(), "'] must be a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.find("..") != std::string::npos || shard.find('/') != std::string::npos)
      fail(file.string(), ": shard name '", shard, "' must be a plain file name in the same folder");
    if (!shard_index.count(shard)) {
      const auto shard_path = file.parent_path() / shard;
      if (!std::filesystem::exists(shard_path))
        fail(file.string(), ": shard '", shard, "' named for tensor '", it.key(), "' does not exist");
      shard_index[shard] = files_.size();
      files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
    }
    const size_t owner = shard_index[shard];
    if (!files_[owner]->contains(it.key()))
      fail(file.string(), ": tensor '", it.key(), "' is mapped to shard '", shard, "' which does not hold it");
    owner_[it.key()] = owner;
  }
  // Tensors present in shards but not in the index are still readable.
  for (size_t i = 0; i < files_.size(); ++i)
    for (const auto& kv : files_[i]->header().tensors) owner_.emplace(kv.first, i);
}

std::vector<std::string> TensorStore::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : owner_) out.push_back(kv.first);
  return out;
}

bool TensorStore::contains(const std::string& name) const { return owner_.count(name) != 0; }

const TensorEntry& TensorStore::entry(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) fail(path_.string(), ": no tensor named '", name, "'");
  return files_[it->second]->header().tensors.at(name);
}

torch::Tensor TensorStore::get(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) fail(path_.string(), ": no tensor named '", name, "'");
  return files_[it->second]->get(name);
}

std::map<std::string, std::string> TensorStore::metadata() const {
  std::map<std::string, std::string> out;
  for (const auto& f : files_)
    for (const auto& kv : f->metadata()) out.emplace(kv.first, kv.second);
  return out;
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& kv : tensors) sorted.emplace_back(kv.first, kv.second.detach().to(torch::kCPU).contiguous());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first == sorted[i - 1].first) fail(path.string(), ": duplicate tensor name '", sorted[i].first, "'");

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(to_dtype(t.scalar_type()));
    header[name] = {{"dtype", dtype_name(to_dtype(t.scalar_type()))}, {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // keep the data area 8-byte aligned
  std::string blob;
  blob.reserve(8 + text.size() + offset);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) blob.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  blob += text;
  for (const auto& kv : sorted) blob.append(static_cast<const char*>(kv.second.data_ptr()), kv.second.nbytes());
  write_file_atomic(path, blob);
}

}  // namespace sapling
