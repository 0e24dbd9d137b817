#!/usr/bin/env bash
# README command 1: install dependencies, build, and run the quickstart on the bundled real sample
# (recipes/quickstart.toml names the components): structures -> dataset with 3Di tokens, then
# per-residue embeddings and contact maps from the bundled pretrained ESM2 (8M shape).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
S=build/sapling
OUT=${SAPLING_QUICKSTART_OUT:-out/quickstart}
mkdir -p "$OUT"
echo "== 1/4 recipe check"
$S recipe check recipes/quickstart.toml
echo "== 2/4 prepare: bundled BM5 + PSICOV structures -> dataset (3Di tokens, complex-level split)"
$S prepare datasets/sample/bm5 datasets/sample/psicov --out "$OUT/dataset" --tokenizer foldseek_3di --valid-fraction 0.25 --seed 0
echo "== 3/4 tokens: PSICOV target chains -> 3Di + residue FASTA, as Foldseek writes them"
$S tokens --tokenizer foldseek_3di --input datasets/sample/psicov --out "$OUT/psicov"
echo "== 4/4 embed: those chains with the bundled ESM2 (8M shape)"
$S embed --model datasets/models/esm2_t6_8M_uniprot_f16 --fasta "$OUT/psicov.aa.fasta" \
  --out "$OUT/embeddings.safetensors" --include per_tok,mean,contacts
echo
echo "quickstart done; outputs in $OUT:"
ls -la "$OUT"
