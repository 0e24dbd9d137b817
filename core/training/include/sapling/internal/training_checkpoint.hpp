// Run folders on disk: model folders (HF layout + heads) and resumable checkpoints written atomically.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <limits>
#include <optional>
#include <string>

#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/safetensors.hpp"

namespace sapling {

// Loss-head weights are stored next to the model as heads.safetensors, keyed
// "<loss name>.<parameter>" (e.g. "structure_token.hidden_layer.weight").
inline constexpr const char* kHeadsFile = "heads.safetensors";

// Everything besides tensors that a resumed run needs. The data order, crops
// and masks are functions of (seed, epoch, micro-batch index), so these
// counters are the whole random state.
struct TrainingProgress {
  int64_t step = 0;            // optimiser steps done
  int64_t epoch = 0;           // epoch of the next micro-batch
  int64_t batch_in_epoch = 0;  // micro-batches of that epoch's plan already consumed (all processes)
  double best_valid = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  int64_t validations_without_improvement = 0;
  uint64_t metrics_bytes = 0;  // length of metrics.jsonl when the checkpoint was written
  double train_seconds = 0;    // time spent in training steps so far
  int64_t residues = 0;        // residues trained on so far (all processes)
  std::string recipe_digest;   // of the resolved recipe, to warn when a resume changes it
};

// The model card of a model folder (see model_card.hpp).
inline constexpr const char* kModelCardFile = "README.md";

// Writes `dir` as a model folder: the encoder's save_pretrained files, its
// Hugging Face tokenizer files (save_tokenizer), heads.safetensors and, when
// `model_card` is not empty, README.md with that text. Written into a sibling
// temporary folder first and then renamed over `dir`, so a crash leaves either
// the old folder or the new one, never a mix.
SAPLING_API void save_model_folder(const std::filesystem::path& dir, const SequenceEncoder& model,
                                   const NamedTensors& heads, const std::string& model_card = "");

// A run's resumable checkpoints: <run>/checkpoints/step-<N>/ (a model folder
// plus optimizer.safetensors and progress.json) and <run>/checkpoints/latest,
// a one-line file naming the newest complete one, replaced atomically after
// that folder is complete.
class SAPLING_API CheckpointStore {
 public:
  explicit CheckpointStore(std::filesystem::path run_dir);

  // Writes checkpoint `progress.step`, points `latest` at it, then removes the
  // oldest ones beyond `keep`.
  void save(const TrainingProgress& progress, const SequenceEncoder& model, const NamedTensors& heads,
            const NamedTensors& optimizer, int64_t keep) const;

  // The newest complete checkpoint: the one `latest` names, or when that file
  // is missing or damaged the highest-numbered folder with a readable
  // progress.json (with a warning). Empty when there is none.
  std::optional<std::filesystem::path> latest() const;

  // Reads a checkpoint folder's progress.json; fails naming the file and key.
  static TrainingProgress read_progress(const std::filesystem::path& checkpoint);

  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace sapling
