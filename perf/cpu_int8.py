#!/usr/bin/env python3
"""int8 dynamic quantisation against bf16 autocast on the CPU (issue #19): is int8 worth building?

Two measurements, both in PyTorch (Debian's 1.13, the LibTorch sapling links), one thread by default:
1. One linear layer, 4096 x 320 -> 1280 (ESM2-8M's FFN up-projection, as the issue measured it): GFLOP/s of
   float32 (BLAS), bf16 weights and inputs, float32 under bf16 autocast, and int8 dynamic quantisation with each
   quantised engine this build has.
2. End to end: perf/torch_esm2.py's ESM2 (the plugin's forward, operation for operation) embedding the first
   --sequences of --fasta in float32, int8 dynamic (every nn.Linear, onednn engine) and bf16 autocast:
   residues/s and the per-residue cosine of the last hidden state against float32.
Data: the data sets esm2_t6_8M_uniprot and embed_bench where `sapling data fetch ... --to DIR` puts them
(SAPLING_DATA_DIR, default out/perf/data, as perf/cpu_dtypes.sh fetches them; or --model / --fasta).
Run with the glibc heap settings sapling gives itself (perf/cpu_dtypes.sh does the same for its PyTorch rows):
  MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 python3 perf/cpu_int8.py [--preset NAME]
"""
import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_esm2 as te  # noqa: E402


def layer_rates():
    x, lin = torch.randn(4096, 320), torch.nn.Linear(320, 1280)
    flop = 2 * 4096 * 320 * 1280

    def rate(f, reps=50):
        f()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                f()
            best = min(best, (time.perf_counter() - t) / reps)
        return flop / best / 1e9

    rows = [("float32 (BLAS)", rate(lambda: lin(x)))]
    lb, xb = copy.deepcopy(lin).to(torch.bfloat16), x.to(torch.bfloat16)
    rows.append(("bf16 weights and inputs", rate(lambda: lb(xb))))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rows.append(("float32 under bf16 autocast", rate(lambda: lin(x))))
    for engine in torch.backends.quantized.supported_engines:
        if engine == "none":
            continue
        torch.backends.quantized.engine = engine
        q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        rows.append((f"int8 dynamic ({engine})", rate(lambda: q(x))))
    return rows


def embed(model, seqs, batches, autocast):
    out, start = [], time.perf_counter()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.no_grad()
    with torch.no_grad(), context:
        for batch in batches:
            ids, keep = te.pad_batch([seqs[i] for i in batch])
            hidden, _ = model(ids, keep, logits=False)
            out += [(i, hidden[b, 1 : 1 + len(seqs[i])].float()) for b, i in enumerate(batch)]
    seconds = time.perf_counter() - start
    out.sort(key=lambda pair: pair[0])
    return torch.cat([h for _, h in out]), sum(map(len, seqs)) / seconds


def main():
    data = os.environ.get("SAPLING_DATA_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "out",
                                                           "perf", "data"))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(data, "models", "esm2_t6_8M_uniprot"))
    p.add_argument("--preset", choices=sorted(te.PRESETS), help="a randomly initialised released size instead")
    p.add_argument("--fasta", default=os.path.join(data, "bench", "embed_100.fasta"))
    p.add_argument("--sequences", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    for path in [args.fasta] + ([] if args.preset else [args.model]):
        if not os.path.exists(path):
            sys.exit(f"error: {path} does not exist: `build/sapling data fetch esm2_t6_8M_uniprot embed_bench "
                     f"--to {data}` (add --mirror DIR for a local mirror), or pass --model / --fasta")
    torch.set_num_threads(args.threads)
    for name, gflops in layer_rates():
        print(f"linear 4096 x 320 -> 1280, {name}: {gflops:.1f} GFLOP/s")
    torch.backends.quantized.engine = "onednn"
    model = (te.ESM2.from_preset(args.preset) if args.preset else te.ESM2.from_folder(args.model)).eval()
    seqs = [s[:1022] for _, s in te.read_fasta(args.fasta)[: args.sequences]]
    batches = te.token_batches([len(s) for s in seqs], 4096)
    reference, fp32_rate = embed(model, seqs, batches, False)
    int8_model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    print(f"embed {len(seqs)} sequences, {args.preset or args.model}, {args.threads} thread(s):")
    print(f"  float32: {fp32_rate:.0f} residues/s")
    for name, (hidden, rate) in [("int8 dynamic (onednn)", embed(int8_model, seqs, batches, False)),
                                 ("bf16 autocast", embed(model, seqs, batches, True))]:
        cosine = torch.nn.functional.cosine_similarity(hidden, reference, dim=-1)
        print(f"  {name}: {rate:.0f} residues/s; per-residue cosine vs float32 mean {cosine.mean():.6f}, "
              f"min {cosine.min():.6f}")


if __name__ == "__main__":
    main()
