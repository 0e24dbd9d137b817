#!/usr/bin/env python3
# A UniProt-like length mix of real sequences for the embedding benchmarks (issue #29): perf/embed_cpu.sh, perf/cpu_vs_torch.sh.
"""Writes N real protein sequences whose lengths follow UniProtKB's length distribution, deterministically.

Lengths: a log-normal, truncated to [--min-length, --max-length] (drawn again when outside). The defaults,
mu = 5.84 and sigma = 0.84, are fitted to the real UniProtKB sample this draws from (the data set uniprot20k,
`sapling data fetch uniprot20k`: 20,000 UniProtKB entries from Debian's mmseqs2-examples):
mu = ln(median length 345), sigma = (ln Q3 - ln Q1) / 1.349 with quartiles 189 and 583. That protein lengths
are close to log-normal is the usual description (e.g. Zhang, "Protein-length distributions for the three
domains of life", Trends Genet. 16:107, 2000); the truncation at 1022 residues is ESM2's context, so unlike the
real set (7% longer than 1022) no sequence here gets truncated by the embedders.

Sequences: for each drawn length L, one real sequence of the source file, chosen at random among those with
L to 1.25 L residues (or, when there is none, among all longer ones), cropped to its first L residues.
Output order is the order of drawing; headers are ">mix_NNNNN len=L src=ACCESSION". Same arguments, same
bytes (Python's random.Random(seed)). Standard library only.

  .venv/bin/python perf/uniprot_length_mix.py --source DATA/data/sequences/uniprot20k.fasta.gz --n 200 --seed 0 \
      --out /tmp/uniprot_mix.fasta
"""
import argparse
import bisect
import gzip
import random
import sys


def read_fasta(path):
    opener = gzip.open if path.endswith(".gz") else open
    records, label, seq = [], None, []
    with opener(path, "rt") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if label is not None:
                    records.append((label, "".join(seq)))
                label, seq = (line[1:].split() or [""])[0], []
            elif line:
                seq.append(line)
    if label is not None:
        records.append((label, "".join(seq)))
    return records


def draw(records, n, seed, mu, sigma, lo, hi):
    rng = random.Random(seed)
    pool = sorted((r for r in records if r[1].isalpha() and r[1].isupper()), key=lambda r: (len(r[1]), r[0]))
    lengths = [len(s) for _, s in pool]
    if not pool or lengths[-1] < lo:
        sys.exit("no source sequence is long enough")
    out = []
    while len(out) < n:
        length = int(round(rng.lognormvariate(mu, sigma)))
        if not lo <= length <= min(hi, lengths[-1]):
            continue
        first = bisect.bisect_left(lengths, length)
        last = bisect.bisect_right(lengths, max(int(1.25 * length), length))
        if last == first:  # none within 25%: any longer one
            last = len(pool)
        label, seq = pool[rng.randrange(first, last)]
        out.append((f"mix_{len(out) + 1:05d}", length, label, seq[:length]))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True,
                   help="real sequences (FASTA, gzipped or not): the data set uniprot20k's uniprot20k.fasta.gz")
    p.add_argument("--n", type=int, default=200, help="sequences to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mu", type=float, default=5.84, help="log-normal mu (ln of the median length)")
    p.add_argument("--sigma", type=float, default=0.84, help="log-normal sigma")
    p.add_argument("--min-length", type=int, default=30)
    p.add_argument("--max-length", type=int, default=1022)
    p.add_argument("--out", help="FASTA to write (default: standard output)")
    args = p.parse_args()
    mix = draw(read_fasta(args.source), args.n, args.seed, args.mu, args.sigma, args.min_length, args.max_length)
    text = "".join(f">{name} len={length} src={label}\n{seq}\n" for name, length, label, seq in mix)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    lengths = sorted(length for _, length, _, _ in mix)
    q = lambda f: lengths[min(len(lengths) - 1, int(f * len(lengths)))]
    print(f"uniprot length mix: {len(mix)} sequences, {sum(lengths)} residues; length min {lengths[0]}, "
          f"quartiles {q(0.25)} / {q(0.5)} / {q(0.75)}, p90 {q(0.9)}, max {lengths[-1]} (seed {args.seed}, "
          f"log-normal mu {args.mu:g}, sigma {args.sigma:g}, [{args.min_length}, {args.max_length}])", file=sys.stderr)


if __name__ == "__main__":
    main()
