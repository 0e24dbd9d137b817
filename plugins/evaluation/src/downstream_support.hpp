// Readers, ridge regression and zero-shot mutant scoring behind the fitness, variant_effect and residue_classification tasks.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sapling/interfaces.hpp"

namespace sapling::evaluation {

// ------------------------------------------------------------ FLIP regression CSV

struct FitnessRow {
  std::string sequence;
  double target = 0;
  bool test = false;        // set == test
  bool validation = false;  // FLIP's validation flag (a subset of the train rows)
  size_t line = 0;
};
// CSV with a header naming at least sequence, target and set (validation
// optional; other columns ignored), as FLIP's splits. Errors name the file and
// line: missing columns, wrong field count, a target that is no finite number,
// a set other than train/test, a validation flag other than True/False/empty,
// an empty sequence, no train or no test rows.
std::vector<FitnessRow> read_fitness_csv(const std::filesystem::path& path);

// ------------------------------------------------------------ FLIP per-residue labels

struct LabelledChain {
  std::string id;
  std::string sequence;
  std::vector<int64_t> labels;  // class index per residue (digit - first_label)
  bool test = false, validation = false;
};
// FLIP's two-file layout: `sequences` FASTA (>ID, residues) and `labels`
// FASTA (>ID SET=train|test VALIDATION=True|False, one digit per residue).
// Digits must lie in [first_label, last_label]. Errors name the file, line and
// ID: an ID without sequence, a label string whose length differs from the
// sequence, a digit out of range, a missing or unknown SET / VALIDATION, an ID
// repeated with different labels. FLIP's bind files repeat some IDs with the
// same labels (one_vs_many: 46), a few of them once as train and once as test:
// a repeat is kept once, in the most held-out of its sets (test > validation >
// train) so nothing trains on a test chain, and counted in `report`.
struct LabelReport {
  int64_t repeated = 0;     // records whose ID came earlier (dropped)
  int64_t conflicting = 0;  // of those, with a different SET / VALIDATION
};
std::vector<LabelledChain> read_residue_labels(const std::filesystem::path& sequences, const std::filesystem::path& labels,
                                               int64_t first_label, int64_t last_label, LabelReport* report = nullptr);

// ------------------------------------------------------------ mutants

struct Substitution {
  int64_t index = 0;  // 0-based position in the wild type
  char from = 0, to = 0;
};
// "H24C" or ProteinGym's multi-mutant "H24C:A25G" with positions numbered from
// `first_position` (the number of the wild type's first residue). Fails with
// `where` in the message when the text is malformed, a position lies outside
// the wild type, the wild-type letter disagrees, the new residue is not one of
// the 20 standard amino acids, or one position is mutated twice.
std::vector<Substitution> parse_mutant(const std::string& text, const std::string& wild_type, int64_t first_position,
                                       const std::string& where);
std::string apply_mutations(std::string wild_type, const std::vector<Substitution>& mutations);

struct VariantRow {
  std::string mutant;
  std::vector<Substitution> mutations;
  double score = 0;
  size_t line = 0;
};
struct VariantTable {
  std::vector<VariantRow> rows;
  int64_t rows_without_score = 0;  // empty or NaN measurement: skipped, counted
};
// A DMS CSV (a leading BOM and an unnamed index column are fine; double-quoted
// fields are not supported and are an error). When the table has a
// `mutated_sequence` column (ProteinGym), each row's sequence must equal the
// wild type with the row's mutations applied. Errors name the file, line and
// column.
VariantTable read_variant_csv(const std::filesystem::path& path, const std::string& mutant_column,
                              const std::string& score_column, const std::string& wild_type, int64_t first_position);
// Tables without a wild-type FASTA (ProteinGym): the first row's mutated_sequence with its mutations reverted.
std::string wild_type_from_variants(const std::filesystem::path& path, const std::string& mutant_column,
                                    int64_t first_position);

// log_softmax of the model's logits at each residue of `sequence`, [L, V]
// float64 on the CPU: one unmasked pass (wild-type marginal) or, with
// `masked`, one pass per position in `positions` with that residue replaced
// by <mask> (rows of other positions are NaN; a progress bar on a terminal).
// `batch` masked copies per pass.
torch::Tensor residue_log_probs(SequenceEncoder& model, const std::string& sequence, bool masked,
                                const std::vector<int64_t>& positions = {}, int64_t batch = 16);
// ESM-1v score: sum over mutations of log p(to) - log p(from) at the mutated position.
double marginal_score(const torch::Tensor& log_probs, const std::vector<Substitution>& mutations, const Tokenizer& tokenizer);

// ------------------------------------------------------------ ridge regression

// Minimises ||Y - 1 b^T - Z W||^2 + lambda ||W||^2 on standardised columns Z
// of x (intercepts unpenalised), in closed form (float64 normal equations).
struct RidgeModel {
  torch::Tensor mean, scale;  // of x's columns
  torch::Tensor weight;       // [D, K] in standardised units
  torch::Tensor bias;         // [K]: the mean training target
  torch::Tensor predict(const torch::Tensor& x) const;  // [N, K] float64
};
// x [N, D], y [N, K] (or [N]: then K = 1).
RidgeModel fit_ridge(const torch::Tensor& x, const torch::Tensor& y, double lambda);
std::vector<double> to_vector(const torch::Tensor& t);  // flattened float64 values

}  // namespace sapling::evaluation
