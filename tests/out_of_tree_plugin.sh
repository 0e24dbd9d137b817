#!/usr/bin/env bash
# Runs CONTRIBUTING.md's "plugin outside sapling's tree" walkthrough as written: install this build into a
# temporary prefix, copy and rename the template outside the source tree, build it with find_package(sapling),
# then list it, run the installed conformance checks on it and train 2 steps with it through the installed `sapling`.
# Usage (ctest runs it): tests/out_of_tree_plugin.sh BUILD_DIR [CXX_COMPILER]
set -euo pipefail
BUILD_DIR=$(cd "$1" && pwd)
SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
TINY_ESM2=$SOURCE_DIR/tests/fixtures/esm2_tiny  # absolute: the commands below run elsewhere
[[ -n ${2:-} ]] && export CXX=$2  # the plugin is built by the compiler that built sapling

WORK=$(cd "$(mktemp -d "${TMPDIR:-/tmp}/sapling-out-of-tree.XXXXXX")" && pwd -P)  # no symlinks: paths are compared below
trap 'rm -rf "$WORK"' EXIT
# ccache for the plugin's LibTorch translation unit; paths under $WORK hash as relative, so reruns hit.
if command -v ccache > /dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR=$WORK
  export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
fi
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { echo; echo "== $* ($SECONDS s)"; }

# The walkthrough's two folders (CONTRIBUTING.md uses $HOME/.local/sapling and $HOME/my_selector).
PREFIX=$WORK/prefix
PLUGIN_DIR=$WORK/my_selector
cd "$SOURCE_DIR"

step "install sapling"
# CONTRIBUTING.md: cmake --install build --prefix "$PREFIX"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" > "$WORK/install.log"
for f in bin/sapling bin/sapling-conformance share/sapling/conformance/bm5/1AY7_l_u.pdb.gz lib/libsapling_sdk.so lib/libsapling_plm.so lib/libsapling_data.so lib/libsapling_training.so \
  lib/libsapling_tools.so include/sapling/plugin.hpp include/sapling/packing.hpp include/sapling/dataset.hpp lib/cmake/sapling/saplingConfig.cmake \
  lib/cmake/sapling/saplingConfigVersion.cmake lib/cmake/sapling/saplingTargets.cmake \
  lib/cmake/sapling/SaplingPlugin.cmake lib/sapling/plugins/sapling_esm2.so \
  lib/sapling/plugins/foldseek_3di/centroids.tsv share/sapling/recipes/reference_esm2_8m.toml \
  share/sapling/recipes/ablations/mlm_only.toml; do
  [[ -e $PREFIX/$f ]] || fail "$PREFIX/$f was not installed"
done
[[ ! -e $PREFIX/lib/sapling/plugins/sapling_template.so ]] || fail "the template plugin was installed"
# The API only: no internal header, none of the training engine's or the tools' (core/README.md).
[[ ! -e $PREFIX/include/sapling/internal ]] || fail "internal headers were installed"
for f in training.hpp bench.hpp stats.hpp; do
  [[ ! -e $PREFIX/include/sapling/$f ]] || fail "$PREFIX/include/sapling/$f (not API) was installed"
done
# The installed sapling finds its own manifest and recipes by name, not the checkout's.
"$PREFIX/bin/sapling" data list --to "$WORK/data" > "$WORK/data.txt" || fail "installed sapling data list failed"
grep -q "bm5 .*absent" "$WORK/data.txt" || fail "installed sapling data list does not show bm5"
# Into a file first: `grep -q` stops reading at its match, and under pipefail the writer's SIGPIPE would fail us.
(cd "$WORK" && "$PREFIX/bin/sapling" recipe list) > "$WORK/recipes.txt" || fail "installed sapling recipe list failed"
grep -q "^ *reference_esm2_8m" "$WORK/recipes.txt" || fail "installed sapling recipe list lacks reference_esm2_8m"

step "copy and rename the template"
# CONTRIBUTING.md, step 1, word for word:
cp -r plugins/template "$PLUGIN_DIR"
cd "$PLUGIN_DIR"
mv src/template_plugin.cpp src/my_selector_plugin.cpp
mv tests/test_template.cpp tests/test_my_selector.cpp
sed -i 's/template/my_selector/gI' CMakeLists.txt README.md conformance.toml src/*.cpp tests/*.cpp
if grep -rniI template .; then fail "the copy still says 'template' (above)"; fi

step "build it against the installed sapling"
# CONTRIBUTING.md, step 3 (outside the tree), word for word:
cmake -S . -B build -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX"
cmake --build build
[[ -f build/sapling_my_selector.so ]] || fail "build/sapling_my_selector.so was not built"
grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' build/CMakeCache.txt || fail "the plugin was not built optimised (Release) by default"

step "the installed sapling lists it"
# CONTRIBUTING.md, step 4 (outside the tree), word for word:
SAPLING_PLUGIN_PATH="$PWD/build" "$PREFIX/bin/sapling" plugins list | tee "$WORK/plugins.txt"
grep -q "residue_selector my_selector_threshold" "$WORK/plugins.txt" || fail "my_selector_threshold is not listed"
grep -q "field_provider my_selector_contact_number" "$WORK/plugins.txt" || fail "my_selector_contact_number is not listed"
grep -q "my_selector ($PLUGIN_DIR/build/sapling_my_selector.so" "$WORK/plugins.txt" || fail "not loaded from its build folder"
grep -q "esm2 ($PREFIX/lib/sapling/plugins/sapling_esm2.so" "$WORK/plugins.txt" || fail "built-in plugins not loaded from $PREFIX"
if grep -q "failed to load" "$WORK/plugins.txt"; then fail "a plugin failed to load"; fi

step "the installed conformance checks pass on it (sapling_add_conformance_test, ctest)"
# CONTRIBUTING.md, step 4 (outside the tree): ctest runs the installed sapling-conformance with ./conformance.toml.
ctest --test-dir build --output-on-failure -V | tee "$WORK/conformance.txt"  # -V: the report of a passing test too
grep -q "ok   alignment_loss my_selector_bfactor: scores real residues" "$WORK/conformance.txt" ||
  fail "the B-factor loss (reads bfactor) did not pass the conformance checks"
grep -q "ok   residue_selector my_selector_threshold: one keep flag per residue" "$WORK/conformance.txt" ||
  fail "the selector did not pass the conformance checks"
grep -q "$PREFIX/bin/sapling-conformance" build/CTestTestfile.cmake || fail "the conformance test does not run the installed runner"
# By name on SAPLING_PLUGIN_PATH, as an author may run it by hand.
SAPLING_PLUGIN_PATH="$PWD/build" "$PREFIX/bin/sapling-conformance" my_selector --examples conformance.toml > "$WORK/by-name.txt" ||
  { cat "$WORK/by-name.txt"; fail "sapling-conformance my_selector (found on SAPLING_PLUGIN_PATH) failed"; }

step "prepare the PSICOV sample with the installed sapling (3Di tokens, GearNet embeddings)"
"$PREFIX/bin/sapling" prepare "$SOURCE_DIR/datasets/sample/psicov" --out "$WORK/dataset" --tokenizer foldseek_3di \
  --valid-fraction 0.3 --seed 6 --pgnn gearnet \
  --pgnn-weights "$SOURCE_DIR/datasets/models/gearnet_edge_mc_6x128.safetensors" \
  --set 'pgnn.hidden_dims=[128,128,128,128,128,128]' --quiet

step "train 2 steps with the installed reference recipe, the plugin's selector replacing 'none'"
SAPLING_PLUGIN_PATH="$PWD/build" "$PREFIX/bin/sapling" train "$PREFIX/share/sapling/recipes/reference_esm2_8m.toml" \
  --out "$WORK/run" --set model.path="$TINY_ESM2" --set data.dataset="$WORK/dataset" \
  --set data.train_split=train --set data.valid_split=valid --set data.high_quality_only=false \
  --set selector.component=my_selector_threshold --set selector.threshold=1000 \
  --set losses.burial.component=my_selector_burial --set losses.burial.weight=0.1 \
  --set train.global_batch=0 --set train.accumulate=1 --set data.max_length=96 --set data.batching=tokens --set data.tokens_per_batch=512 \
  --set train.valid_max_batches=1 --set train.valid_every=2 --max-steps 2 --threads 2 | tee "$WORK/train.txt"
grep -q "trained 2 steps" "$WORK/train.txt" || fail "training did not report 2 steps"
[[ $(grep -c '"type":"train"' "$WORK/run/metrics.jsonl") == 2 ]] || fail "metrics.jsonl has no 2 train lines"
kept=$(grep '"type":"train"' "$WORK/run/metrics.jsonl" | tail -1 | grep -o '"kept.structure_token":[0-9.e-]*') ||
  fail "the selector kept no fraction (kept.structure_token missing)"
echo "last step: $kept"
# The plugin's own loss, on the field its own provider computes from the dataset's structures.
grep '"type":"train"' "$WORK/run/metrics.jsonl" | tail -1 | grep -q '"burial"' ||
  fail "the plugin's loss on its provider's field (burial) was not logged"
# No per-residue loss reaches 1000: the plugin's selector keeps nothing, where 'none' would keep everything.
[[ $kept == '"kept.structure_token":0' || $kept == '"kept.structure_token":0.0' ]] ||
  fail "the plugin's selector was not in effect ($kept, expected 0)"

echo
echo "out-of-tree plugin: installed, built, listed and trained in $SECONDS s"
