// Renders a trained model folder's README.md: base model, resolved recipe, data, steps, metrics, licence, loading.
#include "sapling/internal/model_card.hpp"

#include <cstdio>
#include <sstream>

namespace sapling {

namespace {

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", x);
  return buf;
}

// How transformers loads the folder; the family's note (e.g. where its modelling code comes from) follows.
std::string loading_section(const ModelCard& card) {
  std::ostringstream os;
  os << "```python\n"
        "from transformers import AutoModelForMaskedLM, AutoTokenizer\n\n"
        "path = \"path/to/this/folder\"\n"
        "tokenizer = AutoTokenizer.from_pretrained(path)\n"
     << "model = AutoModelForMaskedLM.from_pretrained(path" << (card.trust_remote_code ? ", trust_remote_code=True" : "")
     << ")\n"
        "inputs = tokenizer([\"MKTAYIAKQRQISFVKSHFSRQ\"], return_tensors=\"pt\")\n"
        "outputs = model(**inputs, output_hidden_states=True)\n"
        "```\n";
  if (!card.loading_note.empty()) os << "\n" << card.loading_note << "\n";
  os << "\nIn sapling: `[model] path = \"path/to/this/folder\"` in a recipe, or "
        "`sapling embed --model path/to/this/folder ...`.\n";
  return os.str();
}

}  // namespace

std::string model_card_markdown(const ModelCard& card) {
  const auto& licence = card.licence;
  std::ostringstream os;
  os << "---\n"
     << "library_name: transformers\n"
     << "license: " << (licence.empty() ? "other" : licence) << "\n"
     << "pipeline_tag: fill-mask\n"
     << "tags:\n- protein\n- protein-language-model\n- " << card.family << "\n- structure-alignment\n- sapling\n"
     << "---\n\n";
  os << "# " << card.family << " trained with sapling (" << card.checkpoint << ")\n\n"
     << "A protein language model trained by `sapling train` with the losses of its recipe (below): structure "
        "alignment (masked LM + structure tokens + residue contrastive), or masked LM alone. "
     << "This folder is the " << (card.checkpoint == "best" ? "checkpoint with the lowest validation loss" : "model at the end of the run")
     << ", in the Hugging Face layout of its family: `config.json`, `model.safetensors`, the tokenizer files, "
     << "and `heads.safetensors` (sapling's loss heads, not needed for inference).\n\n";
  os << "| | |\n|---|---|\n"
     << "| family | " << card.family << " |\n"
     << "| base model | `" << card.base_model << "` |\n"
     << "| recipe | `" << card.recipe << "` |\n"
     << "| training data | `" << (card.dataset.empty() ? "(none recorded)" : card.dataset) << "` |\n"
     << "| optimiser steps | " << card.steps << " |\n"
     << "| licence | " << (licence.empty() ? "that of the base model" : "`" + licence + "`, the licence of the family's released code and weights") << " |\n\n";
  os << "## Validation at this checkpoint\n\n";
  if (card.validation.empty()) {
    os << "Not recorded (the run had no validation split, or none ran at this step).\n\n";
  } else {
    os << "Mean per micro-batch on the validation split:\n\n| metric | value |\n|---|---|\n";
    for (const auto& [name, value] : card.validation) os << "| " << name << " | " << number(value) << " |\n";
    os << "\n";
  }
  os << "## How to load\n\n" << loading_section(card) << "\n";
  os << "## Recipe as resolved\n\n"
     << "The recipe with its `base` chain and command-line overrides applied; relative paths in it are "
        "relative to the recipe file that set them.\n\n"
     << "```toml\n" << card.resolved_recipe << (card.resolved_recipe.empty() || card.resolved_recipe.back() == '\n' ? "" : "\n")
     << "```\n";
  return os.str();
}

}  // namespace sapling
