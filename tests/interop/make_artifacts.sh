#!/usr/bin/env bash
# Makes what tests/interop/test_*.py load with the real Python libraries: a dataset, ESM2/AMPLIFY runs, embeddings.
# usage: bash tests/interop/make_artifacts.sh BUILD_DIR OUT_DIR   (from the repository root; ~10 s on one core)
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
sapling="$build/sapling"
cd "$root"

# One thread everywhere: the machines that run the suite are small and shared.
export SAPLING_NUM_THREADS=1 OMP_NUM_THREADS=1
# A run folder with checkpoints is never overwritten (sapling refuses): start from a clean slate each time.
rm -rf "$out/dataset" "$out/esm2_run" "$out/amplify_run" "$out/embed" "$out/esm2_batch.safetensors" \
  "$out/amplify_batch.safetensors"

"$sapling" prepare datasets/sample/psicov --out "$out/dataset" --tokenizer foldseek_3di --valid-fraction 0.3 \
  --seed 6 --pgnn gearnet --pgnn-weights datasets/models/gearnet_edge_mc_6x128.safetensors \
  --set 'pgnn.hidden_dims=[128,128,128,128,128,128]' --quiet --threads 1

"$sapling" train tests/interop/interop.toml --out "$out/esm2_run" --quiet --threads 1 \
  --set "model.path=$root/tests/fixtures/esm2_tiny" --set "data.dataset=$out/dataset"
"$sapling" train tests/interop/interop.toml --out "$out/amplify_run" --quiet --threads 1 \
  --set model.component=amplify --set "model.path=$root/tests/fixtures/amplify_tiny" --set "data.dataset=$out/dataset"
# The first micro-batch through the trained models, float32 (--inspect-batch trains nothing): sapling's token ids of
# real dataset sequences (batch.ids, masked; batch.mlm_labels), padding (batch.mask) and the logits on them.
"$sapling" train tests/interop/interop.toml --quiet --threads 1 --inspect-batch "$out/esm2_batch.safetensors" \
  --set "model.path=$out/esm2_run/final" --set "data.dataset=$out/dataset" --set train.precision=fp32
"$sapling" train tests/interop/interop.toml --quiet --threads 1 --inspect-batch "$out/amplify_batch.safetensors" \
  --set model.component=amplify --set "model.path=$out/amplify_run/final" --set "data.dataset=$out/dataset" \
  --set train.precision=fp32

# Sequences for the embedding comparisons: the FASTA reader upper-cases, <mask> is a bracketed token, X B U Z O are
# ESM2's rare letters (AMPLIFY has only B).
mkdir -p "$out/embed"
cat > "$out/embed/seqs.fasta" <<'EOF'
>normal a typical sequence
MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRGEMPQTIGGGIGQSRLTMLLLQLPHIGQVQAGVWPAACRESVPALL
>rare
GSHMXBUZOKLLVXBUZO
>masked
MKT<mask>AYIAKQ<mask>RQISFVK
>lower
mktayiakqrqisfvksh
>allaa
ACDEFGHIKLMNPQRSTVWY
EOF
# fp32 so that the comparisons against transformers / fair-esm measure the model, not bf16 autocast.
"$sapling" embed --model "$out/esm2_run/final" --fasta "$out/embed/seqs.fasta" --out "$out/embed/esm2.safetensors" \
  --include per_tok,mean,bos,contacts --repr-layers 0,-1 --dtype fp32 --threads 1 --quiet
"$sapling" embed --model "$out/esm2_run/final" --fasta "$out/embed/seqs.fasta" --out "$out/embed/esm2_npy" \
  --format npy --include per_tok,mean --dtype fp32 --threads 1 --quiet
# (AMPLIFY's contact head is untrained here: sapling warns so, rightly; the contacts are only checked for shape.)
"$sapling" embed --model "$out/amplify_run/final" --fasta "$out/embed/seqs.fasta" \
  --out "$out/embed/amplify.safetensors" --include per_tok,mean,bos,contacts --dtype fp32 --threads 1 --quiet

echo "interop artifacts in $out:"
echo "  dataset/                        sapling prepare (3Di tokens, GearNet float16 embeddings)"
echo "  esm2_run/, amplify_run/         2-step structure-aligned runs (final/, best/, checkpoints/, metrics.jsonl)"
echo "  esm2_batch.safetensors, amplify_batch.safetensors   the first micro-batch through final/ (--inspect-batch)"
echo "  embed/seqs.fasta                the embedded sequences"
echo "  embed/esm2.safetensors          ESM2 final/: per_tok/mean/bos at layers 0 and last, contacts (fp32)"
echo "  embed/esm2_npy/                 the same model, --format npy (per_tok, mean)"
echo "  embed/amplify.safetensors       AMPLIFY final/: per_tok/mean/bos/contacts (fp32)"
