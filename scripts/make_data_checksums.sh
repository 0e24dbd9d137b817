#!/usr/bin/env bash
# Regenerates datasets/checksums/<name>.sha256 and the `bytes` of each data set in datasets/manifest.toml from a
# mirror laid out as the manifest's paths (the project's is ../shared). Usage: scripts/make_data_checksums.sh MIRROR
# Run it when a data set changes on the mirror, then review the diff: a changed checksum is a changed data set.
set -euo pipefail
cd "$(dirname "$0")/.."
mirror=${1:?usage: scripts/make_data_checksums.sh MIRROR}
manifest=datasets/manifest.toml
# name, path and include (default *) of each [table].
awk '/^\[/{if(name!="")print name, path, inc; gsub(/[\[\]]/,""); name=$0; path=""; inc="*"}
     /^path *=/{v=$0; sub(/^[^"]*"/,"",v); sub(/".*$/,"",v); path=v}
     /^include *=/{v=$0; sub(/^[^"]*"/,"",v); sub(/".*$/,"",v); inc=v}
     END{if(name!="")print name, path, inc}' "$manifest" |
while read -r name path include; do
  [[ -d "$mirror/$path" ]] || { echo "error: $mirror/$path is not a folder (data set $name)" >&2; exit 1; }
  files=$(cd "$mirror/$path" && find . -type f ! -name '.*' -path "./$include" -printf '%P\n' | LC_ALL=C sort)
  [[ -n "$files" ]] || { echo "error: no file matches $include in $mirror/$path (data set $name)" >&2; exit 1; }
  (cd "$mirror/$path" && xargs -d '\n' sha256sum <<< "$files") > "datasets/checksums/$name.sha256"
  bytes=$(cd "$mirror/$path" && xargs -d '\n' stat -c %s <<< "$files" | awk '{s+=$1} END{print s+0}')
  awk -v n="$name" -v b="$bytes" '/^\[/{cur=$0; gsub(/[\[\]]/,"",cur)} cur==n && /^bytes *=/{$0="bytes = " b} {print}' \
    "$manifest" > "$manifest.tmp" && mv "$manifest.tmp" "$manifest"
  echo "$name: $(wc -l < "datasets/checksums/$name.sha256") files, $bytes bytes"
done
