// Sequence encoder (pLM) checks: shapes, padding invariance, determinism, save/load, tiny inputs.
#include "checks.hpp"
#include "sapling/interfaces.hpp"

namespace sapling::conformance {

namespace sequence_encoder_impl {  // named, not anonymous: the unity build compiles these files as one unit

const std::vector<std::string> kSequences = {"MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPV"};

std::shared_ptr<SequenceEncoder> prepared(std::shared_ptr<SequenceEncoder> model) {
  model->to(torch::kFloat32);
  model->eval();
  return model;
}

// max |a - b| / max(1, max |b|): "relative to the tensor's scale".
double scaled_max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double diff = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
  const double scale = std::max(1.0, b.to(torch::kFloat64).abs().max().item<double>());
  return diff / scale;
}

bool same_shape(const torch::Tensor& t, std::vector<int64_t> shape) { return t.sizes() == torch::IntArrayRef(shape); }

void shapes(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto model = prepared(build_component<SequenceEncoder>(name, context));
  c.expect(!model->family().empty(), "family() is not empty");
  const auto batch = model->tokenizer().batch(kSequences);
  ForwardRequest request;
  request.hidden_states = true;
  const auto out = model->forward(batch.ids, batch.mask, request);
  const int64_t B = batch.ids.size(0), T = batch.ids.size(1), H = model->hidden_size();
  c.expect(same_shape(out.last_hidden, {B, T, H}),
           text("last_hidden is [B, T, hidden_size()], got ", out.last_hidden.sizes()));
  c.expect(same_shape(out.logits, {B, T, model->tokenizer().size()}),
           text("logits are [B, T, tokenizer().size()], got ", out.logits.sizes()));
  for (int64_t layer = 1; layer <= model->num_layers(); ++layer)
    c.expect(same_shape(model->representation(out, layer), {B, T, H}),
             text("representation(", layer, ") is [B, T, H]"));
  // Layer 0 is the embedding output "where the family has it" (AMPLIFY does not): shaped, or a clear error.
  torch::Tensor embeddings;
  std::string message;
  c.expect(succeeds_or_reports([&] { embeddings = model->representation(out, 0); }, &message),
           "representation(0) returns or throws sapling::Error, not: " + message);
  if (embeddings.defined()) c.expect(same_shape(embeddings, {B, T, H}), "representation(0) is [B, T, H]");
  c.expect(torch::equal(model->representation(out, -1), model->representation(out, model->num_layers())),
           "representation(-1) is the last layer's");
  c.expect(torch::isfinite(out.last_hidden).all().item<bool>(), "last_hidden is finite");
  c.expect(model->max_tokens() >= model->pretrained_tokens(), "max_tokens() >= pretrained_tokens()");
  c.expect(torch::equal(model->forward(batch.ids, batch.mask, request).last_hidden, out.last_hidden),
           "deterministic in evaluation mode");
}

void padding(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto model = prepared(build_component<SequenceEncoder>(name, context));
  const auto padded = model->tokenizer().batch(kSequences);
  const auto alone = model->tokenizer().batch({kSequences[1]});
  const auto in_batch = model->forward(padded.ids, padded.mask, {});
  const auto single = model->forward(alone.ids, alone.mask, {});
  const int64_t n = alone.ids.size(1);
  const double diff = scaled_max_diff(in_batch.logits[1].slice(0, 0, n), single.logits[0]);
  c.note(text("padded vs alone logits max diff ", diff));
  c.expect(diff < 1e-5, text("padded vs alone logits differ by ", diff, " (at most 1e-5)"));
}

void save_load(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto model = prepared(build_component<SequenceEncoder>(name, context));
  const auto dir = context.scratch / "saved";
  model->save_pretrained(dir);
  model->save_tokenizer(dir);
  const auto& entry = SequenceEncoderRegistry::instance().find(name);
  Options options = context.examples.options(SequenceEncoder::kind, name, entry.schema);
  if (!entry.schema.find("path")) {
    c.skip("no `path` option to load a saved folder from");
    return;
  }
  options.set("path", dir.string());
  const auto loaded = prepared(entry.factory(options));
  c.expect(loaded->tokenizer().vocab() == model->tokenizer().vocab(), "the loaded tokenizer has the same vocabulary");
  const auto batch = model->tokenizer().batch(kSequences);
  const double diff = scaled_max_diff(loaded->forward(batch.ids, batch.mask, {}).logits,
                                      model->forward(batch.ids, batch.mask, {}).logits);
  c.note(text("save/load logits max diff ", diff));
  c.expect(diff < 1e-6, text("the loaded model's logits differ by ", diff, " (at most 1e-6)"));
}

void tiny_inputs(Checker& c, const std::string& name, const RunContext& context) {
  torch::NoGradGuard no_grad;
  const auto model = prepared(build_component<SequenceEncoder>(name, context));
  for (const std::string sequence : {"M", ""}) {
    Checker::Context in(c, "sequence '" + sequence + "'");
    torch::Tensor logits;
    std::string message;
    c.expect(succeeds_or_reports(
                 [&] {
                   const auto batch = model->tokenizer().batch({sequence});
                   logits = model->forward(batch.ids, batch.mask, {}).logits;
                 },
                 &message),
             "returns or throws sapling::Error, not: " + message);
    if (logits.defined()) c.expect(torch::isfinite(logits).all().item<bool>(), "logits are finite");
  }
}

}  // namespace sequence_encoder_impl

std::vector<Check> sequence_encoder_checks() {
  using namespace sequence_encoder_impl;
  const std::string kind = SequenceEncoder::kind;
  return {{kind, "outputs shaped by its own sizes, deterministically", shapes},
          {kind, "padding does not change a sequence's outputs", padding},
          {kind, "save_pretrained then loading the folder gives the same model", save_load},
          {kind, "one-residue and empty sequences give outputs or a clear error", tiny_inputs}};
}

}  // namespace sapling::conformance
