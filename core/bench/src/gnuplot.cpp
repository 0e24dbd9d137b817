// gnuplot scripts written beside their data and run as a subprocess (bench's charts, training curves).
#include "gnuplot.hpp"

#include "sapling/internal/bench.hpp"
#include "sapling/files.hpp"
#include "sapling/log.hpp"

namespace fs = std::filesystem;

namespace sapling::bench {

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::optional<fs::path> draw_gnuplot(const fs::path& dir, const std::string& name, const std::string& script,
                                     const fs::path& gnuplot, const std::string& terminal) {
  const fs::path gp = dir / (name + ".gp"), png = dir / (name + ".png");
  write_file_atomic(gp, "# " + name + ": drawn by sapling (gnuplot " + gp.filename().string() + ")\n" +
                            "set terminal " + terminal + "\nset output " + gp_quote(png.filename().string()) +
                            "\nset termoption noenhanced\n" + script);
  if (gnuplot.empty()) return std::nullopt;
  const int status = run_process({gnuplot.string(), "-c", gp.string()}, dir / (name + ".log"), dir);
  if (status != 0 || !fs::exists(png)) {
    warn("gnuplot failed on ", gp.string(), " (exit ", status, "; see ", (dir / (name + ".log")).string(), ")");
    return std::nullopt;
  }
  fs::remove(dir / (name + ".log"));
  return png;
}

}  // namespace sapling::bench
