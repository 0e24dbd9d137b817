// safetensors: round trip of every dtype, sharded reads, metadata, and every malformed-header case.
#include <catch2/catch.hpp>
#include <fstream>

#include "sapling/error.hpp"
#include "sapling/files.hpp"
#include "sapling/safetensors.hpp"
#include "test_support.hpp"

namespace {

// Builds a raw safetensors image from a header text and a data area.
std::string image(const std::string& header, const std::string& data, int64_t claimed_len = -1) {
  std::string out;
  const uint64_t n = claimed_len < 0 ? header.size() : static_cast<uint64_t>(claimed_len);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string parse_error(const std::string& bytes) {
  try {
    sapling::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.safetensors");
  } catch (const sapling::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, shape and the metadata", "[safetensors]") {
  const auto dir = sapling::test::temp_dir("st");
  sapling::NamedTensors tensors = {
      {"f32", torch::randn({3, 4})},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"i64", torch::arange(6, torch::kInt64).view({2, 3})},
      {"i32", torch::arange(3, torch::kInt32)},
      {"i16", torch::arange(3, torch::kInt16)},
      {"i8", torch::arange(-2, 2, torch::kInt8)},
      {"u8", torch::arange(4, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 7})},
  };
  sapling::save_safetensors(dir / "t.safetensors", tensors, {{"producer", "sapling test"}});
  sapling::SafetensorsFile file(dir / "t.safetensors");
  CHECK(file.metadata().at("producer") == "sapling test");
  CHECK(file.keys().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    auto back = file.get(name);
    CHECK(back.scalar_type() == t.scalar_type());
    CHECK(back.sizes() == t.sizes());
    CHECK(back.equal(t));
  }
  // No temporary files are left behind by the atomic write.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("files written by sapling are read by the safetensors library", "[safetensors][python]") {
  const auto python = sapling::test::python();
  if (sapling::test::run_command(python + " -c 'import numpy, safetensors'").exit_code != 0) {
    SAPLING_SKIP(python << " lacks numpy or safetensors (scripts/install-deps.sh installs both in .venv)");
  }
  const auto dir = sapling::test::temp_dir("stpy");
  sapling::save_safetensors(dir / "t.safetensors",
                            {{"a", torch::arange(12, torch::kFloat32).view({3, 4})}, {"b", torch::tensor({7, 8}, torch::kInt64)}},
                            {{"format", "pt"}});
  // safetensors' own reader (numpy, torch-free), and the 8-byte alignment of the data the format recommends.
  const std::string script =
      "import struct,sys,numpy as np\n"
      "from safetensors import safe_open\n"
      "from safetensors.numpy import load_file\n"
      "t=load_file(sys.argv[1])\n"
      "assert (t['a']==np.arange(12,dtype='f4').reshape(3,4)).all() and t['a'].dtype==np.float32\n"
      "assert (t['b']==np.array([7,8])).all() and t['b'].dtype==np.int64\n"
      "with safe_open(sys.argv[1],'np') as f: assert f.metadata()=={'format':'pt'}, f.metadata()\n"
      "n=struct.unpack('<Q',open(sys.argv[1],'rb').read(8))[0]; assert (8+n)%8==0\n"
      "print('python-ok')\n";
  std::ofstream(dir / "check.py") << script;
  auto r = sapling::test::run_command(python + " " + (dir / "check.py").string() + " " + (dir / "t.safetensors").string());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("python-ok") != std::string::npos);
}

TEST_CASE("sharded checkpoints read through the index", "[safetensors]") {
  SAPLING_REQUIRE_DATA("esm2_t6_8M_uniprot");
  const auto dir = sapling::test::data_path("esm2_t6_8M_uniprot");
  sapling::TensorStore store(dir);
  CHECK(store.keys().size() > 50);
  auto e = store.get("esm.embeddings.word_embeddings.weight");
  CHECK(e.sizes() == std::vector<int64_t>{33, 320});
  CHECK(store.contains("esm.encoder.layer.5.output.dense.weight"));

  // An index naming a missing shard is a clear error.
  const auto bad = sapling::test::temp_dir("shard");
  sapling::write_file_atomic(bad / "model.safetensors.index.json",
                             R"({"weight_map": {"x": "model-00009-of-00009.safetensors"}})");
  CHECK_THROWS_WITH(sapling::TensorStore(bad), Catch::Contains("shard 'model-00009-of-00009.safetensors'") &&
                                                    Catch::Contains("does not exist"));
}

TEST_CASE("malformed safetensors headers are rejected with a reason", "[safetensors][hostile]") {
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  SECTION("shorter than the length prefix") { CHECK_THAT(parse_error("abc"), Catch::Contains("shorter than the 8-byte")); }
  SECTION("header length larger than the file") {
    CHECK_THAT(parse_error(image("{}", "", 1000)), Catch::Contains("exceeds the file size"));
  }
  SECTION("absurd header length") {
    CHECK_THAT(parse_error(image("{}", "", int64_t(1) << 60)), Catch::Contains("exceeds the file size"));
  }
  SECTION("invalid JSON") { CHECK_THAT(parse_error(image("{not json", "")), Catch::Contains("invalid JSON")); }
  SECTION("not an object") { CHECK_THAT(parse_error(image("[1,2]", "")), Catch::Contains("JSON object")); }
  SECTION("offsets out of range") {
    CHECK_THAT(parse_error(image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]}})", "1234")),
               Catch::Contains("outside the data area"));
  }
  SECTION("overlapping tensors") {
    CHECK_THAT(parse_error(image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 +
                                     R"(,"data_offsets":[4,12]}})",
                                 std::string(12, '\0'))),
               Catch::Contains("overlap"));
  }
  SECTION("byte count not matching shape x dtype") {
    CHECK_THAT(parse_error(image(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,12]}})", std::string(12, '\0'))),
               Catch::Contains("does not match shape x dtype size"));
  }
  SECTION("unknown dtype") {
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x")),
               Catch::Contains("unknown dtype 'F8'"));
  }
  SECTION("negative shape") {
    CHECK_THAT(parse_error(image(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", "")),
               Catch::Contains("negative dimension"));
  }
  SECTION("huge shape overflowing the element count") {
    CHECK_THAT(parse_error(image(
                   R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", "")),
               Catch::Contains("shape overflows"));
  }
  SECTION("missing fields") {
    CHECK_THAT(parse_error(image(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x")),
               Catch::Contains("missing string field 'dtype'"));
  }
  SECTION("truncated data (file shorter than the offsets say)") {
    const auto dir = sapling::test::temp_dir("trunc");
    sapling::save_safetensors(dir / "t.safetensors", {{"a", torch::randn({100})}});
    std::string bytes = sapling::read_file(dir / "t.safetensors");
    sapling::write_file_atomic(dir / "t.safetensors", bytes.substr(0, bytes.size() - 10));
    CHECK_THROWS_WITH(sapling::SafetensorsFile(dir / "t.safetensors"),
                      Catch::Contains("t.safetensors: tensor 'a'") && Catch::Contains("outside the data area"));
  }
}
