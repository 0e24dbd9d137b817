# The reproduction's data rules, shared by scripts/repro.sh and scripts/gpu_campaign.sh (source this file).

# The reference model's data: the full PSICOV entries (their headers carry method and resolution), X-ray at
# 1.9 A or better. Usage: prepare_psicov SAPLING FOLDER OUT [more `sapling prepare` options]
prepare_psicov() {
  local sapling=$1 folder=$2 out=$3 files=() f
  shift 3
  for f in "$folder"/*.pdb.gz; do [[ $f == *.chain.pdb.gz ]] || files+=("$f"); done
  "$sapling" prepare "${files[@]}" --out "$out" --tokenizer foldseek_3di --valid-fraction 0.1 --seed 0 \
    --high-quality --max-resolution 1.9 "$@"
}

# The contact evaluation set: the unbound structures (*_u.pdb*) of the complexes in a prepared dataset's valid
# split, never trained on. Usage: held_out_unbound DATASET/index.json
held_out_unbound() {
  # index.json lists one chain per line, as compact JSON: the valid chains' lines, then their source files.
  grep '"split":"valid"' "$1" | sed 's/.*"source":"\([^"]*\)".*/\1/' | grep '_u\.pdb' | sort -u
}
