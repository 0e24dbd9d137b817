// The trainer's recipe sections: every published default of METHOD.md is a setting here.
#include "sapling/internal/training.hpp"

namespace sapling {

namespace {

SectionSpec data_section() {
  SectionSpec s{"data", SectionKind::Settings, "", {}, "training data: a prepared dataset and how it is batched"};
  auto& o = s.schema;
  o.add("dataset", OptionType::Path)
      .doc("folder written by `sapling prepare` (index.json + shards): structures, tokens, embeddings");
  o.add("sequences", OptionType::Path)
      .doc("instead of a dataset: a FASTA file (plain or .gz) for sequence-only (MLM) training");
  o.add("valid_fraction", OptionType::Float)
      .default_value(0.05)
      .min(0.0)
      .max(1.0, true)
      .doc("with sequences: fraction of records (drawn by a hash of the label) in the 'valid' split");
  o.add("train_split", OptionType::String).default_value(std::string("train")).doc("split trained on");
  o.add("valid_split", OptionType::String)
      .default_value(std::string("valid"))
      .doc("split validated on; \"\" = no validation");
  o.add("high_quality_only", OptionType::Bool)
      .default_value(false)
      .doc("keep only high-quality chains (X-ray <= 2.0 A), as the reference model's training does");
  o.add("min_residues", OptionType::Int)
      .default_value(int64_t{8})
      .min(1)
      .doc("skip chains shorter than this (published: 1, nothing dropped)");
  o.add("unknown_residues", OptionType::String)
      .default_value(std::string("exclude"))
      .one_of({"exclude", "include"})
      .doc("<unk> tokens: exclude from masking and the heads, or treat as residues like every non-special token (published)");
  o.add("max_length", OptionType::Int)
      .default_value(int64_t{2046})
      .min(1)
      .doc("residues per protein; longer chains are cropped to a random window (published 2046); capped only by a "
           "learned position limit (rotary ESM2 has none)");
  o.add("batching", OptionType::String)
      .default_value(std::string("tokens"))
      .one_of({"tokens", "proteins", "packed"})
      .doc("tokens: token-budget micro-batches of similar lengths (less padding); proteins: fixed protein count "
           "(published); packed: proteins end to end in rows (pack_row_tokens), attention kept within each protein "
           "(the same losses as padded)");
  o.add("proteins_per_batch", OptionType::Int)
      .default_value(int64_t{8})
      .min(1)
      .doc("proteins per micro-batch (the contrastive matrix and selection group); an upper bound with batching = tokens");
  o.add("tokens_per_batch", OptionType::Int)
      .default_value(int64_t{4096})
      .min(1)
      .doc("batching = tokens: padded tokens (specials included) per micro-batch; packed: real tokens");
  o.add("pack_row_tokens", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("batching = packed: tokens per row; 0 = chosen per micro-batch, about its longest protein (attention "
           "across proteins then costs about what padding to it would); larger rows suit GPUs");
  o.add("sort_window", OptionType::Int)
      .default_value(int64_t{64})
      .min(1)
      .doc("batching = tokens: micro-batches' worth of shuffled proteins sorted by length together");
  return s;
}

SectionSpec masking_section() {
  SectionSpec s{"masking", SectionKind::Settings, "", {}, "masked-LM corruption of the input (one mask for every loss)"};
  auto& o = s.schema;
  o.add("probability", OptionType::Float).default_value(0.15).min(0.0, true).max(1.0).doc("fraction of real residues selected");
  o.add("replace_with_mask", OptionType::Float)
      .default_value(1.0)
      .min(0.0)
      .max(1.0)
      .doc("of the selected: fraction set to <mask> (published 1.0; BERT/ESM 0.8)");
  o.add("replace_with_random", OptionType::Float)
      .default_value(0.0)
      .min(0.0)
      .max(1.0)
      .doc("of the selected: fraction set to a random residue (published 0; BERT/ESM 0.1)");
  return s;
}

SectionSpec optim_section() {
  SectionSpec s{"optim", SectionKind::Settings, "", {}, "AdamW, learning-rate schedule and clipping"};
  auto& o = s.schema;
  o.add("lr", OptionType::Float).default_value(1e-4).min(0.0, true).doc("peak learning rate of the pLM");
  o.add("head_lr", OptionType::Float)
      .default_value(1e-3)
      .min(0.0, true)
      .doc("peak learning rate of the loss heads (structure-token MLP, projections, temperature)");
  o.add("betas", OptionType::FloatList).default_value(std::vector<double>{0.9, 0.95}).doc("AdamW (beta1, beta2)");
  o.add("eps", OptionType::Float).default_value(1e-8).min(0.0, true).doc("AdamW epsilon");
  o.add("weight_decay", OptionType::Float)
      .default_value(0.01)
      .min(0.0)
      .doc("decoupled weight decay (published 0.01), applied as [optim] decay says");
  o.add("decay", OptionType::String)
      .default_value(std::string("matrices"))
      .one_of({"matrices", "all"})
      .doc("which parameters decay: matrices (not biases, norms, the temperature or other 1-D tensors) or all (published)");
  o.add("schedule", OptionType::String)
      .default_value(std::string("cosine"))
      .one_of({"cosine", "linear", "constant"})
      .doc("decay after warm-up");
  o.add("warmup_epochs", OptionType::Float)
      .default_value(2.0)
      .min(0.0)
      .doc("linear warm-up length in epochs (published 2); used when warmup_steps < 0");
  o.add("warmup_steps", OptionType::Int)
      .default_value(int64_t{-1})
      .min(-1)
      .doc("linear warm-up length in optimiser steps; -1 = from warmup_epochs");
  o.add("min_lr_ratio", OptionType::Float)
      .default_value(0.0)
      .min(0.0)
      .max(1.0)
      .doc("floor of the decay as a fraction of the peak");
  o.add("clip_grad_norm", OptionType::Float).default_value(1.0).min(0.0).doc("global gradient-norm clip; 0 = off");
  return s;
}

SectionSpec train_section() {
  SectionSpec s{"train", SectionKind::Settings, "", {}, "the training loop: length, accumulation, precision, outputs"};
  auto& o = s.schema;
  o.add("output", OptionType::String)
      .default_value(std::string(""))
      .doc("run folder, relative to the working directory; \"\" = runs/<recipe name>; --out overrides");
  o.add("seed", OptionType::Int).default_value(int64_t{0}).min(0).doc("seeds data order, crops, masks and head initialisation");
  o.add("epochs", OptionType::Float).default_value(25.0).min(0.0, true).doc("passes over the training split (published 25)");
  o.add("max_steps", OptionType::Int).default_value(int64_t{0}).min(0).doc("optimiser steps; 0 = from epochs");
  o.add("accumulate", OptionType::Int)
      .default_value(int64_t{1})
      .min(1)
      .doc("micro-batches per optimiser step and process (effective batch = proteins x accumulate x processes); "
           "derived from global_batch when that is set");
  o.add("global_batch", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("proteins per optimiser step over all processes (published 8 GPUs x 8 x 80 = 5120); each process's "
           "accumulate = global_batch / (proteins_per_batch x WORLD_SIZE), which must divide exactly; needs batching = "
           "\"proteins\"; 0 = use accumulate");
  o.add("device", OptionType::String)
      .default_value(std::string("auto"))
      .doc("auto (CUDA when available), cpu, cuda or cuda:N; cuda without an index is cuda:LOCAL_RANK (one process per GPU)");
  o.add("backend", OptionType::String)
      .default_value(std::string("auto"))
      .one_of({"auto", "gloo", "nccl"})
      .doc("data-parallel collectives: auto = NCCL when the device is CUDA, Gloo on the CPU");
  o.add("precision", OptionType::String)
      .default_value(std::string("auto"))
      .one_of({"auto", "fp32", "bf16", "bf16-pure"})
      .doc("bf16 = autocast: matrix products in bf16 on CUDA or through oneDNN on the CPU (weights, optimiser, norms, "
           "softmax and losses stay float32); auto = bf16 on CUDA and on a CPU with bf16 units (AVX512-BF16, AMX), "
           "fp32 elsewhere; bf16-pure = the official code's DeepSpeed bf16: the model, heads and reference model "
           "held in bf16, cross-entropy on bf16 logits, float32 master weights in the optimiser");
  o.add("normalization", OptionType::String)
      .default_value(std::string("token_mean"))
      .one_of({"token_mean", "published"})
      .doc("token_mean: mean over kept residues; published: sum / (mean_length x proteins x ratio), proteins = "
           "proteins_per_batch with batching = \"proteins\"");
  o.add("published_mean_length", OptionType::Float)
      .default_value(240.50554219467827)
      .min(0.0, true)
      .doc("the published normalisation constant (mean residues per protein of the published training set)");
  o.add("valid_every", OptionType::Int)
      .default_value(int64_t{15})
      .min(0)
      .doc("validate every N optimiser steps (published 15) and at the end; 0 = only at the end");
  o.add("valid_selection", OptionType::Bool)
      .default_value(true)
      .doc("validate through the selector and the reference model; false = every residue counts, no reference "
           "forward (published)");
  o.add("valid_max_batches", OptionType::Int).default_value(int64_t{0}).min(0).doc("cap on validation micro-batches; 0 = all");
  o.add("early_stop_patience", OptionType::Int)
      .default_value(int64_t{0})
      .min(0)
      .doc("stop after N validations without improvement; 0 = never");
  o.add("log_every", OptionType::Int).default_value(int64_t{1}).min(1).doc("write a metrics line every N optimiser steps");
  o.add("checkpoint_every", OptionType::Int)
      .default_value(int64_t{100})
      .min(0)
      .doc("write a resumable checkpoint every N optimiser steps (and at the end); 0 = only at the end");
  o.add("keep_checkpoints", OptionType::Int).default_value(int64_t{2}).min(1).doc("resumable checkpoints kept on disk");
  o.add("save_best", OptionType::Bool).default_value(true).doc("keep the best model by validation loss in <run>/best");
  o.add("distributed_timeout", OptionType::Float)
      .default_value(300.0)
      .min(1.0)
      .doc("seconds a data-parallel collective waits for a peer before the run fails");
  return s;
}

}  // namespace

std::vector<SectionSpec> training_sections() {
  return {data_section(), masking_section(), optim_section(), train_section()};
}

}  // namespace sapling
