#!/usr/bin/env bash
# README command 1: install dependencies, build, and run the quickstart on the bundled real sample:
# structures -> dataset with 3Di tokens -> reference model (high-quality chains, no selection) ->
# structure-aligned ESM2 (8M shape; all three losses, excess-loss selection) -> embeddings from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
S=build/sapling
OUT=out/quickstart  # recipes/quickstart.toml points here
THREADS=${SAPLING_THREADS:-$(nproc)}
rm -rf "$OUT"
mkdir -p "$OUT"
echo "== 1/5 recipe check"
$S recipe check recipes/quickstart.toml recipes/reference_quickstart.toml
echo "== 2/5 prepare: bundled BM5 + PSICOV structures -> dataset (3Di tokens, complex-level split, held-out reference splits)"
$S prepare datasets/sample/bm5 datasets/sample/psicov --out "$OUT/dataset" --tokenizer foldseek_3di \
  --valid-fraction 0.2 --reference-fraction 0.4 --seed 6
echo "== 3/5 train the reference model (three losses, no selection, high-quality chains of the reference splits)"
$S train recipes/reference_quickstart.toml --out "$OUT/reference" --threads "$THREADS"
echo "== 4/5 structure-align ESM2 (MLM + 3Di + residue contrastive, excess-loss selection against the reference)"
$S train recipes/quickstart.toml --out "$OUT/aligned" --threads "$THREADS"
echo "== 5/5 embed the PSICOV targets with the aligned model"
$S tokens --tokenizer foldseek_3di --input datasets/sample/psicov --out "$OUT/psicov" --quiet
$S embed --model "$OUT/aligned/final" --fasta "$OUT/psicov.aa.fasta" \
  --out "$OUT/embeddings.safetensors" --include per_tok,mean,contacts --threads "$THREADS"
echo
echo "quickstart done. Outputs in $OUT:"
echo "  dataset/             prepared structures (index.json + shards, 3Di tokens)"
echo "  reference/best/      the reference model at its best validation loss (HF layout + heads.safetensors)"
echo "  aligned/final/       the structure-aligned ESM2 (HF layout: transformers EsmForMaskedLM.from_pretrained reads it)"
echo "  aligned/metrics.jsonl  per-step losses, kept fractions, lr, grad norm, residues/s; validation lines"
echo "  embeddings.safetensors per-residue / mean embeddings and contacts of the PSICOV targets"
