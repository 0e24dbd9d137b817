// Drawing through gnuplot (a subprocess on a generated script): quoting and the run, shared by bench's plots.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

namespace sapling::bench {

// A gnuplot string in single quotes: a quote is doubled.
std::string gp_quote(const std::string& s);

// Writes `name`.gp in `dir` (`terminal` line, output `name`.png, then `script`) and runs gnuplot when present
// (the .dat files are the caller's). Returns the PNG path when it was drawn; a failure is a warning naming its log.
std::optional<std::filesystem::path> draw_gnuplot(const std::filesystem::path& dir, const std::string& name,
                                                  const std::string& script, const std::filesystem::path& gnuplot,
                                                  const std::string& terminal = "png size 900,560");

}  // namespace sapling::bench
