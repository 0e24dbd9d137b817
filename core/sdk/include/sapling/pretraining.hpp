// Self-supervised pretraining objectives for structure encoders (e.g. GearNet multiview contrast), as a registry.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "sapling/export.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/registry.hpp"
#include "sapling/structure.hpp"

namespace sapling {

// An objective owns its own trainable heads (so the encoder's weights file
// stays exactly the encoder) and is bound to one encoder by attach(). The
// trainer optimises encoder->parameters() and objective->parameters()
// together and saves only the encoder. Objectives usually support one
// encoder family and fail in attach() for any other.
//
// Registered under Registry<StructurePretrainingObjective> by the plugin that
// implements the encoder (it needs the encoder's internals, e.g. graphs).
class SAPLING_API StructurePretrainingObjective : public torch::nn::Module {
 public:
  static constexpr const char* kind = "structure_pretraining_objective";
  ~StructurePretrainingObjective() override;
  // Binds to `encoder` and builds the heads sized to it (on its device).
  virtual void attach(std::shared_ptr<StructureEncoder> encoder) = 0;
  // Scalar loss of one batch (autograd graph through encoder and heads).
  // Every random choice (crops, masks) is drawn from `generator`, so equal
  // seeds give equal views.
  virtual torch::Tensor loss(const std::vector<ChainStructure>& batch, at::Generator& generator) = 0;
  // Name of the encoder family it trains (a Registry<StructureEncoder> name).
  virtual std::string encoder_name() const = 0;
};

// Defined in the core (pretraining.cpp) as an explicit specialisation, since
// the generic definition of instance() lives in interfaces.cpp.
template <>
SAPLING_API Registry<StructurePretrainingObjective>& Registry<StructurePretrainingObjective>::instance();
extern template class Registry<StructurePretrainingObjective>;
using StructurePretrainingRegistry = Registry<StructurePretrainingObjective>;

}  // namespace sapling
