// The loop kit shared by train, train-tokenizer and pretrain-pgnn: Adam, metrics, Ctrl-C, resume folders, generator state.
#include <ATen/CPUGeneratorImpl.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>

#include "sapling/files.hpp"
#include "sapling/internal/training_loop.hpp"
#include "test_support.hpp"

using namespace sapling;
namespace fs = std::filesystem;

// train-tokenizer and pretrain-pgnn used torch::optim::Adam before the kit; make_adam must train the same.
TEST_CASE("make_adam matches torch::optim::Adam step for step", "[training][loop][optimizer]") {
  torch::manual_seed(5);
  const auto w0 = torch::randn({6, 3}), b0 = torch::randn({3});
  auto ours_w = w0.clone().requires_grad_(true), ours_b = b0.clone().requires_grad_(true);
  auto ref_w = w0.clone().requires_grad_(true), ref_b = b0.clone().requires_grad_(true);
  auto ours = make_adam({ours_w, ours_b}, 1e-2);
  torch::optim::Adam reference({ref_w, ref_b}, torch::optim::AdamOptions(1e-2));
  const auto x = torch::randn({9, 6});
  double worst = 0;
  for (int step = 0; step < 30; ++step) {
    ours->zero_grad();
    reference.zero_grad();
    (x.mm(ours_w) + ours_b).tanh().pow(2).sum().backward();
    (x.mm(ref_w) + ref_b).tanh().pow(2).sum().backward();
    ours->step();
    reference.step();
    worst = std::max({worst, test::scaled_max_diff(ours_w, ref_w), test::scaled_max_diff(ours_b, ref_b)});
  }
  std::cout << "make_adam vs torch::optim::Adam, 30 steps: max diff " << worst << "\n";
  CHECK(worst < 1e-6);
  // Its state saves by name: parameter.0, parameter.1.
  const auto state = ours->state();
  CHECK(state[0].first == "exp_avg.parameter.0");
}

TEST_CASE("the finite-loss check names the program, the place and the remedy", "[training][loop]") {
  CHECK_NOTHROW(check_finite_loss(1.5, "p", "at step 1", "lower --lr?"));
  CHECK_THROWS_WITH(check_finite_loss(std::nan(""), "pretrain-pgnn", "at step 7", "lower --lr?"),
                    Catch::Contains("pretrain-pgnn: loss is nan at step 7; stopping (lower --lr?)"));
}

TEST_CASE("metrics logs truncate to a checkpoint's length on resume", "[training][loop]") {
  const auto dir = test::temp_dir("loop-metrics");
  {
    MetricsLog log(dir / "m.jsonl", 0, true, "", 0);
    log.write({{"step", 1}, {"loss", 2.0}});
    const auto kept = log.bytes();
    log.write({{"step", 2}, {"loss", 1.0}});
    MetricsLog resumed(dir / "m.jsonl", kept, true, dir / "tb", 1);
    resumed.write({{"step", 2}, {"loss", 0.5}});
  }
  CHECK(read_file(dir / "m.jsonl") == "{\"loss\":2.0,\"step\":1}\n{\"loss\":0.5,\"step\":2}\n");
  CHECK_FALSE(fs::is_empty(dir / "tb"));
  MetricsLog none("", 0, true, "", 0);  // no file, no events: writes nothing
  none.write({{"step", 1}});
  CHECK(none.bytes() == 0);
  fs::remove_all(dir);
}

TEST_CASE("Ctrl-C asks a run to stop instead of ending it, and the time limit", "[training][loop]") {
  {
    const StopRequest stop(2.0);
    CHECK_FALSE(stop.interrupted());
    CHECK_FALSE(stop.time_up(1.9));
    CHECK(stop.time_up(2.0));
    std::raise(SIGINT);  // the handler only sets the flag
    CHECK(stop.interrupted());
  }
  const StopRequest unlimited(0);
  CHECK_FALSE(unlimited.interrupted());
  CHECK_FALSE(unlimited.time_up(1e9));
}

TEST_CASE("resume folders are written whole or not at all, with the generator's stream", "[training][loop]") {
  const auto dir = test::temp_dir("loop-resume");
  const ResumeFolder folder(dir / "run.checkpoint");
  CHECK_FALSE(folder.progress().has_value());
  at::Generator generator = at::detail::createCPUGenerator(11);
  torch::randperm(10, generator, torch::kInt64);
  folder.save({{"epoch", 2}}, [&](const fs::path& tmp) {
    save_safetensors(tmp / "generator.safetensors", {{"generator", generator_state(generator)}});
  });
  const auto expected = torch::randperm(10, generator, torch::kInt64);
  REQUIRE(folder.progress().has_value());
  CHECK(progress_field<int64_t>(*folder.progress(), "epoch", "progress.json") == 2);
  CHECK_THROWS_WITH(progress_field<int64_t>(*folder.progress(), "next", "p.json"), Catch::Contains("p.json: key 'next' is missing"));
  at::Generator restored = at::detail::createCPUGenerator(0);
  set_generator_state(restored, read_named_tensors(dir / "run.checkpoint/generator.safetensors").at(0).second);
  CHECK(torch::equal(torch::randperm(10, restored, torch::kInt64), expected));
  // A failing write leaves the previous folder as it was.
  CHECK_THROWS(folder.save({{"epoch", 3}}, [](const fs::path&) { throw std::runtime_error("disk full"); }));
  CHECK(progress_field<int64_t>(*folder.progress(), "epoch", "progress.json") == 2);
  folder.remove();
  CHECK_FALSE(fs::exists(folder.directory()));
  fs::remove_all(dir);
}
