// Chain lookup keys of the precomputed plugins and the guard against two chains sharing an ENTRY record.
#include "chain_keys.hpp"

namespace sapling::precomputed {

std::vector<std::string> chain_keys(const std::string& entry, const std::string& chain) {
  if (chain.empty()) return {entry};
  return {entry + "_" + chain, entry};
}

std::string chain_label(const std::string& entry, const std::string& chain) {
  return chain.empty() ? entry : entry + " chain " + chain;
}

std::string FallbackClaims::claim(const std::string& key, const std::string& chain) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto [it, inserted] = owner_.emplace(key, chain);
  return inserted || it->second == chain ? std::string() : it->second;
}

}  // namespace sapling::precomputed
