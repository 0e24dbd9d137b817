// Private to the alignment plugin: the option schemas and factories plugin.cpp registers, and shared gathering helpers.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "sapling/interfaces.hpp"
#include "sapling/options.hpp"

namespace sapling::alignment {

// Flat indices into B*T of the true entries of a [B, T] bool mask, in row-major order.
torch::Tensor flat_index(const torch::Tensor& mask);
// Rows of a [B, T, D] tensor at flat indices: [N, D].
torch::Tensor gather_rows(const torch::Tensor& states, const torch::Tensor& index);
// Fails unless `t` is defined and [B, T] like `like`, naming the loss and the input.
void require_bt(const torch::Tensor& t, const torch::Tensor& like, const char* loss, const char* input);
// The pLM's last hidden states [B, T, D], checked to exist with D == `dim` (option `dim_option`).
const torch::Tensor& require_last_hidden(const LossInputs& in, int64_t dim, const char* loss, const char* dim_option);

OptionSchema mlm_schema();
OptionSchema structure_token_schema();
OptionSchema residue_contrastive_schema();
OptionSchema own_loss_schema();
OptionSchema excess_loss_schema();

// Loss factories: sizes left at 0 in the options come from the run's LossContext.
std::shared_ptr<AlignmentLoss> make_mlm_loss(const Options& options, const LossContext& context);
std::shared_ptr<AlignmentLoss> make_structure_token_loss(const Options& options, const LossContext& context);
std::shared_ptr<AlignmentLoss> make_residue_contrastive_loss(const Options& options, const LossContext& context);
std::shared_ptr<ResidueSelector> make_keep_all_selector(const Options& options);
std::shared_ptr<ResidueSelector> make_own_loss_selector(const Options& options);
std::shared_ptr<ResidueSelector> make_excess_loss_selector(const Options& options);

}  // namespace sapling::alignment
