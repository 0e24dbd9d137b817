// Registers the structure-alignment losses and residue selectors (design/METHOD.md) with the core.
#include "alignment.hpp"
#include "sapling/plugin.hpp"

SAPLING_PLUGIN("alignment", "Structure-alignment losses (MLM, structure tokens, residue contrastive) and selectors") {
  using namespace sapling;
  using namespace sapling::alignment;
  auto& losses = AlignmentLossRegistry::instance();
  losses.add({"mlm", "masked-LM cross-entropy per masked residue from the pLM's logits (not selectable)", mlm_schema(),
              make_mlm_loss});
  Registration<AlignmentLoss> structure_token{
      "structure_token", "MLP head on L2-normalised last hidden states predicting the structure token of every real residue",
      structure_token_schema(), make_structure_token_loss};
  structure_token.fields = {loss_fields::kStructureTokens};
  losses.add(std::move(structure_token));
  Registration<AlignmentLoss> contrastive{
      "residue_contrastive",
      "InfoNCE between projected pLM and pGNN residue embeddings over all residues of the micro-batch, both directions",
      residue_contrastive_schema(), make_residue_contrastive_loss};
  contrastive.fields = {loss_fields::kPgnn};
  losses.add(std::move(contrastive));
  auto& selectors = ResidueSelectorRegistry::instance();
  selectors.add({"none", "keep every residue (no selection)", OptionSchema{}, make_keep_all_selector});
  selectors.add({"own_loss", "keep the top (or bottom) ratio of residues by the model's own detached loss",
                 own_loss_schema(), make_own_loss_selector});
  selectors.add({"excess_loss", "keep the top ratio of residues by current minus reference-model loss",
                 excess_loss_schema(), make_excess_loss_selector});
}
