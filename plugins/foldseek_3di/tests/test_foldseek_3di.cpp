// foldseek_3di on hand-made backbones and broken weight files, through the public plugin path.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "sapling/error.hpp"
#include "sapling/interfaces.hpp"
#include "sapling/structure.hpp"
#include "test_support.hpp"

namespace {

using sapling::ChainStructure;
using sapling::StructureTokenizer;
using sapling::StructureTokenizerRegistry;

struct P {
  double x, y, z;
};
P operator-(P a, P b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
P operator+(P a, P b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
P operator*(P a, double f) { return {a.x * f, a.y * f, a.z * f}; }
double dot(P a, P b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
P cross(P a, P b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
P unit(P a) { return a * (1.0 / std::sqrt(dot(a, a))); }

// Places D so that |CD| = bond, angle BCD = angle, dihedral ABCD = torsion (degrees).
P place(P a, P b, P c, double bond, double angle, double torsion) {
  const double th = angle * M_PI / 180, ph = torsion * M_PI / 180;
  const P bc = unit(c - b), n = unit(cross(b - a, bc)), m = cross(n, bc);
  const P d2{-bond * std::cos(th), bond * std::sin(th) * std::cos(ph), bond * std::sin(th) * std::sin(ph)};
  return c + bc * d2.x + m * d2.y + n * d2.z;
}

// A backbone with ideal bond geometry and the given (phi, psi) per residue.
std::vector<std::array<P, 3>> backbone(const std::vector<std::pair<double, double>>& phi_psi) {
  std::vector<std::array<P, 3>> out;
  P n{0, 0, 0}, ca{1.458, 0, 0};
  P c = place({0, 1, 0}, n, ca, 1.525, 111.2, -60);
  out.push_back({n, ca, c});
  for (size_t i = 1; i < phi_psi.size(); ++i) {
    const P n1 = place(n, ca, c, 1.329, 116.2, phi_psi[i - 1].second);
    const P ca1 = place(ca, c, n1, 1.458, 121.7, 180.0);
    const P c1 = place(c, n1, ca1, 1.525, 111.2, phi_psi[i].first);
    n = n1, ca = ca1, c = c1;
    out.push_back({n, ca, c});
  }
  return out;
}

ChainStructure chain_from(const std::vector<std::array<P, 3>>& atoms) {
  const int64_t len = static_cast<int64_t>(atoms.size());
  ChainStructure chain;
  chain.entry = "handmade";
  chain.chain = "A";
  chain.sequence = std::string(len, 'A');
  chain.coords = torch::full({len, 5, 3}, NAN, torch::kFloat32);
  auto acc = chain.coords.accessor<float, 3>();
  for (int64_t i = 0; i < len; ++i)
    for (int a = 0; a < 3; ++a) {
      acc[i][a][0] = static_cast<float>(atoms[i][a].x);
      acc[i][a][1] = static_cast<float>(atoms[i][a].y);
      acc[i][a][2] = static_cast<float>(atoms[i][a].z);
    }
  chain.observed = torch::ones({len}, torch::kBool);
  chain.bfactor = torch::full({len}, 90.0f);
  return chain;
}

// A helix-strand-helix chain: three different local geometries.
std::vector<std::pair<double, double>> mixed_phi_psi() {
  std::vector<std::pair<double, double>> pp;
  for (int i = 0; i < 14; ++i) pp.emplace_back(-57, -47);
  for (int i = 0; i < 3; ++i) pp.emplace_back(-70, 150);
  for (int i = 0; i < 8; ++i) pp.emplace_back(-120, 130);
  for (int i = 0; i < 3; ++i) pp.emplace_back(80, 10);
  for (int i = 0; i < 12; ++i) pp.emplace_back(-57, -47);
  return pp;
}

std::shared_ptr<StructureTokenizer> make_tokenizer(sapling::Options options = {}) {
  sapling::test::load_build_plugins();
  const auto& entry = StructureTokenizerRegistry::instance().find("foldseek_3di");
  sapling::Options full = sapling::Options::defaults(entry.schema);
  for (const auto& key : options.keys()) {
    if (key == "weights" || key == "centroids")
      full.set(key, options.get_path(key).string());
    else
      full.set(key, options.get_float(key));
  }
  return entry.factory(full);
}

std::string letters(const StructureTokenizer& tok, const std::vector<int64_t>& states) {
  std::string s;
  for (int64_t st : states) s += tok.symbol(st);
  return s;
}

// MODELS.md step 1, written independently of the plugin.
P ideal_cb(P n, P ca, P c) {
  const P v1 = unit(c - ca), v2 = unit(n - ca);
  const P b1 = v2 + v1 * (1.0 / 3), b2 = cross(v1, b1);
  const P u1 = unit(b1), u2 = unit(b2);
  return ca + (v1 * (-1.0 / 3) + (u1 * -0.5 + u2 * -(std::sqrt(3.0) / 2)) * (std::sqrt(8.0) / 3)) * 1.5336;
}

}  // namespace

TEST_CASE("foldseek_3di registers a 20-letter alphabet with mask D", "[foldseek_3di]") {
  auto tok = make_tokenizer();
  CHECK(tok->num_states() == 20);
  CHECK(tok->mask_state() == 2);
  std::string all;
  for (int64_t s = 0; s < 20; ++s) all += tok->symbol(s);
  CHECK(all == "ACDEFGHIKLMNPQRSTVWY");
  CHECK(tok->symbol(tok->mask_state()) == "D");
  CHECK_THROWS_AS(tok->symbol(20), sapling::Error);
  // The ids the structure-token head predicts (the trainer writes state k as id k + 4): 26 in the ESM-like layout.
  const auto vocabulary = tok->vocabulary();
  CHECK(vocabulary.num_states == 20);
  CHECK(vocabulary.num_classes == 26);
  CHECK(vocabulary.state_id(0) == 4);
  CHECK(vocabulary.state_id(19) == 23);
  CHECK((vocabulary.cls == 0 && vocabulary.pad == 1 && vocabulary.eos == 2 && vocabulary.unk == 3 && vocabulary.mask == 25));
}

TEST_CASE("foldseek_3di on hand-made backbones", "[foldseek_3di]") {
  auto tok = make_tokenizer();
  const auto atoms = backbone(mixed_phi_psi());
  const ChainStructure chain = chain_from(atoms);
  const auto states = tok->encode(chain);
  const std::string s = letters(*tok, states);
  INFO("3Di of the hand-made chain: " << s);
  REQUIRE(states.size() == atoms.size());
  CHECK(s.front() == 'D');
  CHECK(s.back() == 'D');

  SECTION("the helix interior has one repeating state, different from the strand") {
    // Ideal helix: every interior residue sees the same geometry and partner offset.
    const std::string helix = s.substr(4, 7), strand = s.substr(19, 4);
    INFO("helix " << helix << " strand " << strand);
    CHECK(helix == std::string(helix.size(), helix[0]));
    CHECK(helix[0] != 'D');
    CHECK(strand.find(helix[0]) == std::string::npos);
  }

  SECTION("a missing CB is rebuilt ideally (MODELS.md step 1)") {
    ChainStructure with_cb = chain_from(atoms);
    auto acc = with_cb.coords.accessor<float, 3>();
    for (size_t i = 0; i < atoms.size(); ++i) {
      const P cb = ideal_cb(atoms[i][0], atoms[i][1], atoms[i][2]);
      acc[i][4][0] = float(cb.x), acc[i][4][1] = float(cb.y), acc[i][4][2] = float(cb.z);
    }
    CHECK(letters(*tok, tok->encode(with_cb)) == s);
    // A CB on the wrong side (mirror image, as for a D-amino acid) changes the virtual centres.
    for (size_t i = 0; i < atoms.size(); ++i) {
      const P ca = atoms[i][1];
      const P cb = ideal_cb(atoms[i][0], ca, atoms[i][2]);
      const P normal = unit(cross(atoms[i][0] - ca, atoms[i][2] - ca));
      const P mirrored = cb - normal * (2 * dot(cb - ca, normal));
      acc[i][4][0] = float(mirrored.x), acc[i][4][1] = float(mirrored.y), acc[i][4][2] = float(mirrored.z);
    }
    CHECK(letters(*tok, tok->encode(with_cb)) != s);
  }

  SECTION("a residue without N is masked together with its neighbours") {
    ChainStructure broken = chain_from(atoms);
    const int64_t k = 20;
    broken.coords[k][0].fill_(NAN);
    const std::string b = letters(*tok, tok->encode(broken));
    INFO("broken: " << b);
    CHECK(b[k] == 'D');
    CHECK(b[k - 1] == 'D');
    CHECK(b[k + 1] == 'D');
    CHECK(b.substr(3, 8) == s.substr(3, 8));  // the first helix does not pair with residue 20
  }

  SECTION("min_confidence masks low-confidence residues only") {
    ChainStructure low = chain_from(atoms);
    low.bfactor[5] = 40.0f;
    low.bfactor[30] = 69.9f;
    sapling::Options options;
    options.set("min_confidence", 70.0);
    auto masking = make_tokenizer(options);
    const std::string m = letters(*masking, masking->encode(low));
    for (size_t i = 0; i < m.size(); ++i) {
      INFO("residue " << i);
      CHECK(m[i] == ((i == 5 || i == 30) ? 'D' : s[i]));
    }
  }

  SECTION("chains too short for a partner are all masked") {
    for (size_t len : {0, 1, 2, 3}) {
      std::vector<std::array<P, 3>> part(atoms.begin(), atoms.begin() + len);
      CHECK(letters(*tok, tok->encode(chain_from(part))) == std::string(len, 'D'));
    }
  }

  SECTION("coordinates that disagree with the sequence length are an error") {
    ChainStructure bad = chain_from(atoms);
    bad.sequence += "A";
    CHECK_THROWS_WITH(tok->encode(bad), Catch::Contains("handmade chain A"));
  }
}

TEST_CASE("foldseek_3di reports broken weight and centroid files precisely", "[foldseek_3di]") {
  const auto dir = sapling::test::temp_dir("foldseek3di");
  const auto shared = sapling::test::source_dir() / "plugins/foldseek_3di/data";
  std::ifstream in(shared / "encoder_weights_3di.kerasify", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(good.size() == 1032);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  auto with_weights = [&](const std::string& path) {
    sapling::Options o;
    o.set("weights", path);
    return o;
  };

  SECTION("the shipped copy loads") { CHECK_NOTHROW(make_tokenizer(with_weights(write("ok.kerasify", good)))); }
  SECTION("truncated") {
    const auto path = write("short.kerasify", good.substr(0, 1000));
    CHECK_THROWS_WITH(make_tokenizer(with_weights(path)),
                      Catch::Contains(path) && Catch::Contains("byte 940") && Catch::Contains("ends at byte 1000"));
  }
  SECTION("unknown layer type") {
    std::string bytes = good;
    bytes[4] = 7;
    const auto path = write("conv.kerasify", bytes);
    CHECK_THROWS_WITH(make_tokenizer(with_weights(path)),
                      Catch::Contains(path) && Catch::Contains("byte 4") && Catch::Contains("layer type 7"));
  }
  SECTION("unknown activation") {
    std::string bytes = good;
    bytes[1028] = 9;  // last layer's activation
    const auto path = write("act.kerasify", bytes);
    CHECK_THROWS_WITH(make_tokenizer(with_weights(path)),
                      Catch::Contains("byte 1028") && Catch::Contains("activation 9"));
  }
  SECTION("trailing bytes") {
    const auto path = write("long.kerasify", good + "xx");
    CHECK_THROWS_WITH(make_tokenizer(with_weights(path)), Catch::Contains("byte 1032"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(make_tokenizer(with_weights((dir / "nope.kerasify").string())),
                      Catch::Contains("nope.kerasify"));
  }
  SECTION("centroid table with a wrong letter") {
    const auto path = write("c.tsv", "# state letter x y\n0 A 1 2\n1 Q 3 4\n");
    sapling::Options o;
    o.set("centroids", path);
    CHECK_THROWS_WITH(make_tokenizer(o), Catch::Contains(path + ":3") && Catch::Contains("letter 'C'"));
  }
  std::filesystem::remove_all(dir);
}
