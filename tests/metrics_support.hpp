// Reading a training run's metrics.jsonl in tests: the lines of one type, parsed.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace sapling::test {

// The lines of `file` whose "type" is `type` ("train", "valid"), in order.
inline std::vector<nlohmann::json> read_metrics(const std::filesystem::path& file, const std::string& type) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) {
      auto parsed = nlohmann::json::parse(line);
      if (parsed.at("type") == type) out.push_back(std::move(parsed));
    }
  return out;
}

}  // namespace sapling::test
