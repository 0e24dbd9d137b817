// `sapling train`: the recipe sections [data], [masking], [optim], [train] and the training entry point.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/recipe.hpp"

namespace sapling {

// The Settings sections the trainer reads; recipe.cpp registers them so that
// `recipe check` validates them without any plugin loaded.
SAPLING_API std::vector<SectionSpec> training_sections();

// What the command line adds to a recipe.
struct TrainRunOptions {
  std::filesystem::path out;  // run folder; empty = [train] output
  bool resume = false;        // continue from out/checkpoints/latest
  int64_t max_steps = -1;     // > 0 overrides [train] max_steps (for smoke runs)
};

struct TrainSummary {
  std::filesystem::path out;     // run folder
  std::filesystem::path final;   // HF-layout model + heads.safetensors
  std::filesystem::path best;    // best checkpoint by validation loss ("" without validation)
  int64_t steps = 0;             // optimiser steps done in total (resumed runs included)
  int64_t resumed_from = 0;      // step the run resumed from (0 = fresh)
  double seconds = 0;            // wall time of this invocation
  double residues_per_second = 0;
  bool stopped_early = false;
  // Validation losses before the first step and after the last ("loss",
  // "mlm", ...); empty without a validation split.
  std::map<std::string, double> valid_before, valid_after;
};

// Fails, naming the loss and the field, when a [losses.*] table's loss reads
// a per-residue field (Registration::fields) that the recipe's data cannot
// provide: structure tokens need a tokenised dataset or [structure_tokens],
// pGNN embeddings a dataset with them or [pgnn], coordinates and B-factors a
// structure dataset. Checks nothing while the dataset does not exist yet.
// `sapling recipe check` and `sapling train` call it.
SAPLING_API void check_loss_fields(const Recipe& recipe);

// Checks a recipe's losses on real data without training: builds the run as
// `train` would, collates the first training micro-batch (epoch 0, micro-batch
// 0), computes its losses and writes every intermediate to `file`
// (safetensors, float32 unless noted): the batch (batch.ids, batch.mask,
// batch.residue_mask, batch.mlm_labels, batch.structure_tokens,
// batch.pgnn_embeddings, batch.proteins), model.logits / model.last_hidden
// [B, T, *] (and reference.* when the selector uses a reference), the loss heads'
// parameters (heads.<loss>.<key>, reference_heads.<loss>.<key>), per term
// terms.<term>.loss / .index / .keep (uint8) / .reference_loss, and the
// normalised terms.<term>.value and total (float64). The golden loss test
// recomputes all of it with an independent PyTorch implementation.
SAPLING_API void inspect_first_batch(const Recipe& recipe, const std::filesystem::path& file);

// Runs the recipe. In a data-parallel launch (WORLD_SIZE > 1 in the
// environment) every process calls this; rank 0 writes the outputs.
SAPLING_API TrainSummary train(const Recipe& recipe, const TrainRunOptions& options);

}  // namespace sapling
