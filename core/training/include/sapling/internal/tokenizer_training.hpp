// `sapling train-tokenizer` as a library function: trains a learned structure tokenizer on a prepared dataset.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "sapling/export.hpp"
#include "sapling/options.hpp"

namespace sapling {

// A tokenizer recipe's validated tables (see core/cli/tokenizer_recipe.hpp for their schemas) plus the command line.
struct TokenizerTrainingSettings {
  std::string component;         // a StructureTokenizer registration whose trainable() is not null
  std::string component_origin;  // where the recipe names it (file:line), for errors
  Options tokenizer;             // the component's options
  Options data;                  // dataset, split, valid_split
  Options train;                 // epochs, batch_chains, lr, seed
  Options output;                // weights, metrics, tensorboard
  double time_limit = 0;         // > 0: stop after the epoch that passes this many seconds
  bool resume = false;           // continue from the checkpoint next to the weights
};

struct TokenizerTrainingSummary {
  std::filesystem::path weights;
  std::filesystem::path checkpoint;  // left behind when the run stopped early ("" when it finished)
  int64_t epochs = 0;                // complete epochs in total
  int64_t resumed_from_epoch = -1;   // epoch the run continued in (-1: a fresh run)
  bool interrupted = false;          // Ctrl-C
  bool time_limited = false;         // the time limit
};

// Where a run writing `weights` keeps its checkpoint: the weights path with extension .checkpoint, a folder.
SAPLING_API std::filesystem::path tokenizer_checkpoint_dir(const std::filesystem::path& weights);

// Trains settings.component for [train] epochs (Adam, batches of batch_chains chains in a seeded order), writes
// the weights and one metrics record after every epoch, and keeps a resumable checkpoint (weights, Adam state,
// the random stream and the position in the epoch) after every epoch and when stopped by Ctrl-C or the time
// limit. A checkpoint left by an earlier run fails unless `resume` is set; a finished run removes it.
// Plugins must be loaded first.
SAPLING_API TokenizerTrainingSummary train_tokenizer(const TokenizerTrainingSettings& settings);

}  // namespace sapling
