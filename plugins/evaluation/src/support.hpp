// What the evaluation tasks share: contact geometry and precision, the L1 logistic fit, DSSP labels, data readers, per-residue probes, frozen features.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "sapling/interfaces.hpp"
#include "sapling/options.hpp"
#include "sapling/structure.hpp"

namespace sapling::evaluation {

// ------------------------------------------------------------ contact geometry

// Ideal-geometry CB from backbone N, CA, C ([L, 3] each), the formula of
// trRosetta and of ESM's contact evaluation:
//   b = CA - N, c = C - CA, a = b x c,
//   CB = -0.58273431 a + 0.56802827 b - 0.54067466 c + CA.
// NaN rows where any backbone atom is missing.
torch::Tensor impute_cb(const torch::Tensor& n, const torch::Tensor& ca, const torch::Tensor& c);

struct ContactTruth {
  torch::Tensor contacts;  // [L, L] bool: imputed CB-CB distance < threshold
  torch::Tensor valid;     // [L] bool: residue has N, CA and C (others are ignored in every metric)
};
// Contacts of a chain with CB imputed for EVERY residue (glycine and observed
// CB included), as the ESM protocol does.
ContactTruth contact_truth(const ChainStructure& chain, double threshold = 8.0);

// Sequence-separation range [min, max] of residue pairs (max < 0: unbounded).
struct SeparationRange {
  std::string name;
  int64_t min = 0, max = -1;
};
// short 6-11, medium 12-23, long >= 24 (ESM / CASP convention).
const std::vector<SeparationRange>& contact_ranges();

// [L, L] bool: pairs i < j with j - i in `range` and both residues valid.
torch::Tensor range_pairs(int64_t length, const torch::Tensor& valid, const SeparationRange& range);

// Precision of the top floor(L / divisor) pairs of `range` ranked by `scores`
// ([L, L], only the upper triangle is read), L = number of residues
// (scores.size(0)). When the range has fewer pairs, all of them are taken.
// NaN when nothing is ranked (L < divisor or no pair in range).
double precision_at(const torch::Tensor& scores, const ContactTruth& truth, const SeparationRange& range,
                    int64_t divisor);

// The nine numbers of the ESM protocol for one protein, in order
// short_P@L, short_P@L/2, short_P@L/5, medium_..., long_...
std::vector<std::pair<std::string, double>> contact_precisions(const torch::Tensor& scores, const ContactTruth& truth);

// Mean of named values over proteins, NaN entries skipped, order of the first protein kept.
class MeanAccumulator {
 public:
  void add(const std::vector<std::pair<std::string, double>>& values);
  std::vector<std::pair<std::string, double>> means() const;

 private:
  std::vector<std::string> order_;
  std::vector<double> sums_;
  std::vector<int64_t> counts_;
};

// ------------------------------------------------------------ L1 logistic regression

// Column means and population standard deviations of x [N, D].
std::pair<torch::Tensor, torch::Tensor> column_mean_std(const torch::Tensor& x);

// Minimises  C * sum_i logloss(y_i, x_i w + b) + ||w||_1  (scikit-learn's
// LogisticRegression(penalty="l1", C) objective, which ESM used with C = 0.15;
// here the intercept is not penalised) by FISTA with adaptive restart on
// standardised columns: the L1 term is rescaled per column so the solution is
// the one of the objective on the ORIGINAL features.
struct L1LogisticOptions {
  double c = 0.15;
  int64_t max_iterations = 3000;
  double tolerance = 1e-6;  // stop when no standardised coefficient moves more than this
};
struct L1LogisticModel {
  torch::Tensor weight;  // [D] float64, on the original feature scale
  double bias = 0;
  int64_t iterations = 0;
  bool converged = false;
  // Largest violation of the optimality (KKT) conditions at the solution, relative to
  // the L1 strength: 0 at the exact minimiser.
  double kkt_violation = 0;
  torch::Tensor predict(const torch::Tensor& x) const;  // probabilities [N] float32
};
// x [N, D] float, y [N] (0/1, any dtype).
L1LogisticModel fit_l1_logistic(const torch::Tensor& x, const torch::Tensor& y, const L1LogisticOptions& options = {});

// ------------------------------------------------------------ secondary structure

// DSSP 8-state classes in probe order, and the 3-state reduction
// H, G, I -> H; E, B -> E; T, S, C (and '-' / ' ') -> C.
inline constexpr const char* kQ8Classes = "HGIEBTSC";
inline constexpr const char* kQ3Classes = "HEC";
char dssp8_to_dssp3(char state);
int64_t q8_index(char state);  // -1 for letters outside kQ8Classes
int64_t q3_index(char state);  // -1 for letters outside kQ3Classes

struct SecondaryStructureChain {
  std::string name;        // "<file stem>:<row>"
  std::string sequence;
  std::vector<int64_t> q3, q8;  // class index per residue
  std::vector<bool> scored;     // residue counts (disorder == 1 and cb513_mask == 1)
};
// The NetSurfP-style CSV of data/ss: header "input, dssp3, dssp8, disorder,
// cb513_mask", one chain per row, per-residue fields space-separated. Errors
// name the file and line (wrong field count, length mismatch, unknown state).
std::vector<SecondaryStructureChain> read_secondary_structure_csv(const std::filesystem::path& path);

// ------------------------------------------------------------ data and splits

// Where the tasks' default data lives: the `data/` folder of sapling's data folder ($SAPLING_DATA_DIR, else
// ~/.local/share/sapling), which `sapling data fetch NAME` fills (datasets/manifest.toml).
std::filesystem::path task_data_dir();
// `option_value` if not empty, else task_data_dir()/relative; fails naming `option` (and, for default data,
// the command that fetches it) when it does not exist.
std::filesystem::path data_path(const std::filesystem::path& option_value, const std::string& relative,
                                const std::string& option);

// Structure files of a contact set: a folder (its *.chain.pdb[.gz] files when
// there are any, as in PSICOV, else every structure file) or a text file
// listing one structure path per line (relative to the list; '#' comments).
// Sorted by file name.
std::vector<std::filesystem::path> contact_structure_files(const std::filesystem::path& source);

// Deterministic permutation of 0..n-1 (Fisher-Yates on std::mt19937_64, whose
// output the C++ standard fixes, so equal seeds agree on every platform).
std::vector<size_t> seeded_permutation(size_t n, uint64_t seed);

// First protein chain of a structure file with at least one residue that has N, CA and C.
ChainStructure read_first_chain(const std::filesystem::path& file);

// ------------------------------------------------------------ per-residue probes

// A linear or one-hidden-layer classifier on frozen features, trained with AdamW.
struct ProbeSettings {
  std::string kind;  // linear or mlp
  int64_t hidden, epochs, patience, batch_size;
  double learning_rate, weight_decay;
  uint64_t seed;
};
// The options probe, hidden, epochs, patience, batch_size, learning_rate, weight_decay (shared by the probe tasks).
void add_probe_options(OptionSchema& schema);
ProbeSettings probe_settings(const Options& options);  // reads those options and `seed`

double accuracy(torch::nn::Sequential& probe, const torch::Tensor& x, const torch::Tensor& y);
// Trains a classifier on (x, y) with AdamW, one pass over a seeded shuffle per
// epoch; keeps the parameters of the epoch with the best validation accuracy
// and stops after `patience` epochs without improvement.
torch::nn::Sequential train_probe(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& vx,
                                  const torch::Tensor& vy, int64_t classes, const ProbeSettings& s, double& best_valid);

// ------------------------------------------------------------ frozen features

torch::Device model_device(SequenceEncoder& model);
// Longest residue count one forward pass takes (the pretrained length minus bos/eos).
int64_t max_residues(const SequenceEncoder& model);

// Per-residue representation of `layer` (-1 = final) for each sequence, [L, D]
// float32 on the CPU. Sequences longer than the model limit are split into
// consecutive pieces. Batched by padded tokens. A non-empty `progress` labels
// a terminal progress bar (residues per second).
std::vector<torch::Tensor> residue_features(SequenceEncoder& model, const std::vector<std::string>& sequences,
                                            int64_t layer = -1, int64_t tokens_per_batch = 4096,
                                            const std::string& progress = "");

// ESM contact-head features of one sequence (<= max_residues): symmetrised,
// APC-corrected attention maps of every layer and head, [L, L, layers*heads]
// float32 on the CPU.
torch::Tensor attention_features(SequenceEncoder& model, const std::string& sequence);

}  // namespace sapling::evaluation
