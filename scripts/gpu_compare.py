#!/usr/bin/env python3
"""Compares sapling's CUDA embeddings (fp32, bf16) with its CPU float32 output, and with HF
transformers' EsmModel on the same weights when transformers is installed; times transformers too."""
import sys, time
import torch
from safetensors.torch import load_file

out, model_dir, fasta = sys.argv[1:4]
cpu = load_file(f"{out}/emb_cpu_fp32.safetensors")
for name in ("cuda_fp32", "cuda_bf16"):
    other = load_file(f"{out}/emb_{name}.safetensors")
    worst = {}
    for k, v in cpu.items():
        kind = k.split("/")[-1]
        d = ((other[k] - v).abs().max() / v.abs().max().clamp_min(1)).item()
        worst[kind] = max(worst.get(kind, 0), d)
    print(f"{name} vs cpu fp32, max |diff| / max(1, max|ref|):", {k: f"{v:.2e}" for k, v in worst.items()})

try:
    from transformers import EsmModel
except ImportError:
    print("transformers not installed: no comparison with the reference")
    sys.exit(0)
labels, seqs = [], []
for line in open(fasta):
    line = line.strip()
    if line.startswith(">"):
        labels.append(line[1:].split()[0]); seqs.append("")
    elif line:
        seqs[-1] += line
vocab = "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>".split()
idx = {t: i for i, t in enumerate(vocab)}
model = EsmModel.from_pretrained(model_dir, dtype=torch.float32, add_pooling_layer=False).cuda().eval()
order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
worst, residues = 0.0, 0
torch.cuda.synchronize(); t0 = time.time()
with torch.no_grad():
    batch = []
    def run(batch):
        global worst, residues
        L = max(min(len(seqs[i]), 1022) for i in batch) + 2  # sapling counts residues, not characters
        ids = torch.full((len(batch), L), 1, dtype=torch.long)
        for b, i in enumerate(batch):
            s = seqs[i][:1022]
            ids[b, :len(s) + 2] = torch.tensor([0] + [idx.get(c, 3) for c in s] + [2])
        ids = ids.cuda()
        h = model(input_ids=ids, attention_mask=(ids != 1).long()).last_hidden_state.float().cpu()
        for b, i in enumerate(batch):
            n = min(len(seqs[i]), 1022); residues += n
            ref = h[b, 1:n + 1]
            mine = cpu[f"{labels[i]}/per_tok"][:n]
            worst = max(worst, ((mine - ref).abs().max() / ref.abs().max().clamp_min(1)).item())
    for i in order:
        L = min(len(seqs[i]), 1022) + 2
        if batch and L * (len(batch) + 1) > 4096:
            run(batch); batch = []
        batch.append(i)
    if batch: run(batch)
torch.cuda.synchronize()
print(f"transformers EsmModel fp32 on CUDA: {residues / (time.time() - t0):.0f} residues/s (incl. host copies)")
print(f"sapling CPU fp32 per_tok vs transformers CUDA fp32: max scaled diff {worst:.2e}")
