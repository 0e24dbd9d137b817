// Conformance of every registered sequence encoder (pLM): shapes, padding invariance, determinism, save/load, tiny inputs.
#include <catch2/catch.hpp>

#include "conformance_support.hpp"
#include "sapling/interfaces.hpp"

namespace {

using sapling::SequenceEncoder;
namespace t = sapling::test;

// Families load a model folder: the repository's tiny fixtures (tests/fixtures/README.md).
const std::map<std::string, t::OptionsMaker>& known_sequence_encoders() {
  static const std::map<std::string, t::OptionsMaker> makers = {
      {"esm2", [](const sapling::OptionSchema& schema, const std::filesystem::path&) {
         return t::with(schema, {{"path", (t::fixtures_dir() / "esm2_tiny").string()}});
       }},
      {"amplify", [](const sapling::OptionSchema& schema, const std::filesystem::path&) {
         return t::with(schema, {{"path", (t::fixtures_dir() / "amplify_tiny").string()}});
       }}};
  return makers;
}

std::shared_ptr<SequenceEncoder> build_sequence_encoder(const std::string& name,
                                                        const t::OptionsMaker* override_maker = nullptr,
                                                        const std::filesystem::path& path = {}) {
  std::shared_ptr<SequenceEncoder> model;
  if (override_maker) {
    const auto& entry = sapling::SequenceEncoderRegistry::instance().find(name);
    model = entry.factory((*override_maker)(entry.schema, path));
  } else {
    model = t::build_for_conformance<SequenceEncoder>(name, known_sequence_encoders(),
                                                      t::temp_dir("conformance-plm-" + name));
  }
  model->to(torch::kFloat32);
  model->eval();
  return model;
}

const std::vector<std::string> kSequences = {"MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPV"};

}  // namespace

TEST_CASE("conformance: every sequence encoder returns outputs shaped by its own sizes", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  const auto names = sapling::SequenceEncoderRegistry::instance().names();
  REQUIRE_FALSE(names.empty());
  for (const auto& name : names) {
    INFO("sequence_encoder '" << name << "'");
    const auto model = build_sequence_encoder(name);
    CHECK_FALSE(model->family().empty());
    const auto batch = model->tokenizer().batch(kSequences);
    sapling::ForwardRequest request;
    request.hidden_states = true;
    const auto out = model->forward(batch.ids, batch.mask, request);
    const int64_t B = batch.ids.size(0), T = batch.ids.size(1), H = model->hidden_size();
    CHECK(out.last_hidden.sizes() == torch::IntArrayRef({B, T, H}));
    CHECK(out.logits.sizes() == torch::IntArrayRef({B, T, model->tokenizer().size()}));
    for (int64_t layer = 1; layer <= model->num_layers(); ++layer)
      CHECK(model->representation(out, layer).sizes() == torch::IntArrayRef({B, T, H}));
    // Layer 0 is the embedding output "where the family has it" (AMPLIFY does not): shaped, or a clear error.
    torch::Tensor embeddings;
    CHECK(t::succeeds_or_reports([&] { embeddings = model->representation(out, 0); }));
    if (embeddings.defined()) CHECK(embeddings.sizes() == torch::IntArrayRef({B, T, H}));
    CHECK(torch::equal(model->representation(out, -1), model->representation(out, model->num_layers())));
    CHECK(torch::isfinite(out.last_hidden).all().item<bool>());
    CHECK(model->max_tokens() >= model->pretrained_tokens());
    // Deterministic in evaluation mode.
    CHECK(torch::equal(model->forward(batch.ids, batch.mask, request).last_hidden, out.last_hidden));
  }
}

TEST_CASE("conformance: padding does not change a sequence's outputs", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::SequenceEncoderRegistry::instance().names()) {
    INFO("sequence_encoder '" << name << "'");
    const auto model = build_sequence_encoder(name);
    const auto padded = model->tokenizer().batch(kSequences);
    const auto alone = model->tokenizer().batch({kSequences[1]});
    const auto in_batch = model->forward(padded.ids, padded.mask, {});
    const auto single = model->forward(alone.ids, alone.mask, {});
    const int64_t n = alone.ids.size(1);
    const double diff = t::scaled_max_diff(in_batch.logits[1].slice(0, 0, n), single.logits[0]);
    std::cout << "conformance " << name << ": padded vs alone logits max diff " << diff << "\n";
    CHECK(diff < 1e-5);
  }
}

TEST_CASE("conformance: save_pretrained then loading the folder gives the same model", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::SequenceEncoderRegistry::instance().names()) {
    INFO("sequence_encoder '" << name << "'");
    const auto model = build_sequence_encoder(name);
    const auto dir = t::temp_dir("conformance-plm-save-" + name) / "saved";
    model->save_pretrained(dir);
    model->save_tokenizer(dir);
    const t::OptionsMaker from_saved = [](const sapling::OptionSchema& schema, const std::filesystem::path& path) {
      return t::with(schema, {{"path", path.string()}});
    };
    const auto loaded = build_sequence_encoder(name, &from_saved, dir);
    CHECK(loaded->tokenizer().vocab() == model->tokenizer().vocab());
    const auto batch = model->tokenizer().batch(kSequences);
    const double diff = t::scaled_max_diff(loaded->forward(batch.ids, batch.mask, {}).logits,
                                           model->forward(batch.ids, batch.mask, {}).logits);
    std::cout << "conformance " << name << ": save/load logits max diff " << diff << "\n";
    CHECK(diff < 1e-6);
  }
}

TEST_CASE("conformance: one-residue and empty sequences give outputs or a clear error", "[conformance]") {
  t::load_build_plugins();
  torch::NoGradGuard no_grad;
  for (const auto& name : sapling::SequenceEncoderRegistry::instance().names()) {
    INFO("sequence_encoder '" << name << "'");
    const auto model = build_sequence_encoder(name);
    for (const std::string sequence : {"M", ""}) {
      torch::Tensor logits;
      std::string message;
      CHECK(t::succeeds_or_reports(
          [&] {
            const auto batch = model->tokenizer().batch({sequence});
            logits = model->forward(batch.ids, batch.mask, {}).logits;
          },
          &message));
      INFO("'" << sequence << "': " << (logits.defined() ? "returned" : "error: " + message));
      if (logits.defined()) CHECK(torch::isfinite(logits).all().item<bool>());
    }
  }
}
