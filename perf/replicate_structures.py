#!/usr/bin/env python3
"""Make a large structure input for scale measurements (issue #31): copies of real PDB files with new identifiers and
perturbed coordinates, written to a temporary folder (never committed).

Each replica r of each input file gets a new 4-character PDB-like id (a digit then three base-36 characters), so
a BM5 complex "1AHW_r_u", "1AHW_l_u", ... stays one complex under its new id and split groups keep their shape.
Every ATOM/HETATM coordinate moves by Gaussian noise (--sigma Angstrom, seeded per replica), so no two replicas
have the same geometry and 3Di/GearNet do real work. Only the standard library is used.

    perf/replicate_structures.py --out /tmp/scale/in --entries 20000 datasets/sample/bm5 datasets/sample/psicov
"""
import argparse
import gzip
import os
import random
import string
import sys

ALPHABET = string.digits + string.ascii_lowercase


def structure_files(inputs):
    out = []
    for root in inputs:
        if os.path.isfile(root):
            out.append(root)
            continue
        for folder, _, names in os.walk(root):
            out += [os.path.join(folder, n) for n in names if n.endswith((".pdb", ".pdb.gz", ".ent", ".ent.gz"))]
    return sorted(out)


def new_id(k):
    """The k-th id: '9' then 3 base-36 characters (46,656 complexes), then '8...', ..."""
    lead, rest = divmod(k, 36 ** 3)
    if lead > 8:
        raise SystemExit("more than 9 x 46656 complexes asked for")
    chars = []
    for _ in range(3):
        rest, d = divmod(rest, 36)
        chars.append(ALPHABET[d])
    return str(9 - lead) + "".join(reversed(chars))


def perturb(lines, rng, sigma):
    out = []
    for line in lines:
        if line.startswith(("ATOM  ", "HETATM")) and len(line) >= 54:
            try:
                xyz = [float(line[30 + 8 * i:38 + 8 * i]) + rng.gauss(0.0, sigma) for i in range(3)]
                line = line[:30] + "".join(f"{v:8.3f}" for v in xyz) + line[54:]
            except ValueError:
                pass  # a malformed record stays as it is: prepare reports it as it would the original
        out.append(line)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="PDB files or folders (the bundled sample)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--entries", type=int, default=20000, help="files to write (approximately: whole complexes)")
    ap.add_argument("--sigma", type=float, default=0.2, help="coordinate noise, Angstrom")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    files = structure_files(args.inputs)
    if not files:
        raise SystemExit("no PDB files in the inputs")
    # Files grouped by their 4-character id: a replica copies a whole complex.
    complexes = {}
    for f in files:
        complexes.setdefault(os.path.basename(f)[:4].upper(), []).append(f)
    texts = {}
    for f in files:
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt") as handle:
            texts[f] = handle.read().splitlines(keepends=True)
    os.makedirs(args.out, exist_ok=True)
    written, k = 0, 0
    while written < args.entries:
        for old_id, members in sorted(complexes.items()):
            rng = random.Random(args.seed * 1_000_003 + k)
            ident = new_id(k)
            k += 1
            for f in members:
                name = os.path.basename(f)
                target = os.path.join(args.out, ident[:2], ident + name[4:])
                if not target.endswith(".gz"):
                    target += ".gz"
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with gzip.open(target, "wt", compresslevel=1) as handle:
                    handle.writelines(perturb(texts[f], rng, args.sigma))
                written += 1
            if written >= args.entries:
                break
    print(f"wrote {written} files ({k} complexes) under {args.out} from {len(files)} originals", file=sys.stderr)


if __name__ == "__main__":
    main()
