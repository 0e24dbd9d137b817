// The README.md model card written into a trained model folder (final/, best/): provenance and how to load it.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "sapling/export.hpp"

namespace sapling {

// What a card says about one saved model folder.
struct ModelCard {
  std::string family;           // "esm2", "amplify", ...
  std::string base_model;       // folder the run started from, or "preset <name>"
  std::string recipe;           // recipe file the run was started with
  std::string resolved_recipe;  // the recipe with its base chain and overrides applied (TOML)
  std::string dataset;          // [data] dataset or sequences
  std::string checkpoint;       // "final" or "best"
  int64_t steps = 0;            // optimiser steps done when the folder was written
  // Validation metrics at this checkpoint ("loss", "mlm", ...); empty when unknown.
  std::map<std::string, double> validation;
  // From the family (SequenceEncoder::card_facts()).
  std::string licence;             // "mit", or "" when unknown
  bool trust_remote_code = false;  // transformers needs the release's modelling code
  std::string loading_note;        // Markdown paragraph after the loading snippet
};

// The card as Markdown with Hugging Face's YAML front matter.
SAPLING_API std::string model_card_markdown(const ModelCard& card);

}  // namespace sapling
