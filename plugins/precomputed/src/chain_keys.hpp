// How the precomputed plugins find a chain's record: ENTRY_CHAIN first, then ENTRY alone (one-chain files).
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sapling::precomputed {

// The keys tried for a chain, in order: "ENTRY_CHAIN" (what `sapling tokens`
// writes for a file with several chains) and "ENTRY" (a file with one chain,
// as both `sapling tokens` and Foldseek name it). ENTRY is ChainStructure::entry
// (core structure_entry_name: the file name without ".gz" and its structure
// extension), CHAIN the author chain name ("A", or "A_2" for a TER-separated part).
std::vector<std::string> chain_keys(const std::string& entry, const std::string& chain);

// "ENTRY chain A", for messages.
std::string chain_label(const std::string& entry, const std::string& chain);

// The ENTRY-alone key is meant for one-chain files: if two chains of one entry
// both fall back to it, one of them would silently get the other's record.
// Claims remember which chain used each such key; a second, different chain
// is refused. Thread-safe (encode() and embed() may run on several threads).
class FallbackClaims {
 public:
  // Records that `chain` used the record `key`; returns the chain that claimed
  // it before when that is a different one, otherwise "".
  std::string claim(const std::string& key, const std::string& chain);

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> owner_;
};

}  // namespace sapling::precomputed
