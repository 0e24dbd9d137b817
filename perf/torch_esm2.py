# PyTorch-eager ESM2 comparator for issue #7: parity check against sapling, then mlm-train-cpu / embed-cpu timings.
"""A small ESM2 in plain PyTorch (no fair-esm, no transformers), written to
match sapling's ESM2 plugin (plugins/esm2/src/esm2_model.cpp) operation for
operation: token-dropout rescale, pre-LN blocks with rotary attention (q scaled
before the rotation, float32 softmax over key-masked logits), exact-erf GELU
FFN, final LayerNorm, LM head tied to the word embeddings.

Modes:
  --mode parity  logits/loss/gradients vs the HF golden fixture esm2_w320, and
                 logits vs a batch sapling dumped (sapling_perf_mlm_train --dump)
  --mode train   MLM step (fwd + cross-entropy + bwd + AdamW) on 8 x 256 tokens; on the CPU or
                 (--device cuda) on a GPU, float32 or --dtype bf16 (torch.autocast), for a loaded model or a randomly
                 initialised released size (--preset), here or as Hugging Face transformers'
                 EsmForMaskedLM (--impl transformers, --hf-attention); --json appends one record per run
  --mode embed   --impl esm2: fair-esm batching (length-sorted, --toks-per-batch, truncation at 1022);
                 --impl transformers: transformers' EsmModel.from_pretrained(--model, attn_implementation=
                 --hf-attention) and its tokenizer (AutoTokenizer) as a transformers user batches: sorted by
                 length, --batch-size sequences per batch padded to the longest with attention_mask,
                 truncation at 1022 residues. Last layer per-residue + mean, residues/s; torch.inference_mode;
                 --dtype bf16 (CPU autocast), --preset
  --mode save-preset  a randomly initialised --preset as an HF folder (--out), for `sapling embed` timings

Safetensors files are read and written with the `safetensors` library. Run with the project's venv python
(.venv/bin/python: the torch wheel sapling's LibTorch comes from, with numpy, safetensors and transformers)
on the CPU; on a GPU machine with its own PyTorch (scripts/gpu_campaign.sh).
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
         "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
CLS, PAD, EOS, UNK, MASK = 0, 1, 2, 3, 32
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
# The released ESM2 sizes (layers, hidden size, heads; FFN 4 x hidden), as plugins/esm2/src/esm2_presets.hpp.
PRESETS = {"esm2_t6_8M_UR50D": (6, 320, 20), "esm2_t12_35M_UR50D": (12, 480, 20),
           "esm2_t30_150M_UR50D": (30, 640, 20), "esm2_t33_650M_UR50D": (33, 1280, 20)}

# ---------------------------------------------------------------- safetensors


def read_safetensors(path):
    """name -> float32 (float64 stays; bf16 and f16 widened) / int64 torch tensor (safetensors.torch.load_file)."""
    out = {}
    for name, tensor in load_file(path).items():
        if tensor.dtype == torch.float64:
            out[name] = tensor
        else:
            out[name] = tensor.float() if tensor.is_floating_point() else tensor.long()
    return out


def read_checkpoint(folder):
    """All tensors of an HF folder: model.safetensors or the shards its index lists."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as fh:
            files = sorted(set(json.load(fh)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(folder, f)))
    return tensors


# ---------------------------------------------------------------- model


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    def __init__(self, dim, heads, ffn, eps, sdpa=False):
        super().__init__()
        self.heads, self.head_dim, self.sdpa = heads, dim // heads, sdpa
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.register_buffer("inv_freq", 1.0 / 10000.0 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.cos = self.sin = None

    def rotary_tables(self, T):
        # Rebuilt only for a longer sequence, as sapling caches them.
        if self.cos is None or self.cos.shape[0] < T:
            with torch.no_grad():
                positions = torch.arange(max(T, 1026), dtype=torch.float32, device=self.inv_freq.device)
                angles = torch.outer(positions, self.inv_freq.float())
                angles = torch.cat((angles, angles), dim=-1)
                self.cos, self.sin = angles.cos(), angles.sin()
        return self.cos[:T], self.sin[:T]

    def forward(self, x, keep):
        B, T, D = x.shape
        split = lambda t: t.view(B, T, self.heads, self.head_dim).transpose(1, 2)
        h = self.attn_norm(x)
        q = split(self.q(h) * self.head_dim ** -0.5)  # ESM2 scales q before the rotation
        k, v = split(self.k(h)), split(self.v(h))
        cos, sin = self.rotary_tables(T)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.sdpa:
            # The fused kernel, as sapling uses when no attention weights are returned (q already scaled).
            context = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, attn_mask=keep[:, None, None, :],
                                                     scale=1.0)
            context = context.transpose(1, 2).reshape(B, T, D)
        else:
            scores = (q @ k.transpose(-1, -2)).masked_fill(~keep[:, None, None, :], float("-inf"))
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.out(context)
        return x + self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))


class ESM2(nn.Module):
    def __init__(self, vocab=33, dim=320, layers=6, heads=20, ffn=1280, eps=1e-5, token_dropout=True, sdpa=False):
        super().__init__()
        self.token_dropout = token_dropout
        self.embed = nn.Embedding(vocab, dim, padding_idx=PAD)
        self.layers = nn.ModuleList(Layer(dim, heads, ffn, eps, sdpa) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=eps)
        self.head_dense, self.head_norm = nn.Linear(dim, dim), nn.LayerNorm(dim, eps=eps)
        self.head_bias = nn.Parameter(torch.zeros(vocab))

    @staticmethod
    def from_folder(folder, sdpa=False):
        with open(os.path.join(folder, "config.json")) as fh:
            c = json.load(fh)
        model = ESM2(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                     c["intermediate_size"], c.get("layer_norm_eps", 1e-5), c.get("token_dropout", True), sdpa)
        model.load_hf(read_checkpoint(folder))
        return model

    @staticmethod
    def from_preset(name, sdpa=False):
        """A randomly initialised released size (PyTorch's default initialisation): for timing only."""
        layers, dim, heads = PRESETS[name]
        return ESM2(33, dim, layers, heads, 4 * dim, sdpa=sdpa)

    def hf_names(self):
        """This module's parameter names -> HF EsmForMaskedLM keys (rotary buffers not included)."""
        names = {"embed.weight": "esm.embeddings.word_embeddings.weight",
                 "head_bias": "lm_head.bias"}
        for ours, theirs in [("final_norm", "esm.encoder.emb_layer_norm_after"), ("head_dense", "lm_head.dense"),
                             ("head_norm", "lm_head.layer_norm")]:
            for p in ("weight", "bias"):
                names[f"{ours}.{p}"] = f"{theirs}.{p}"
        for i in range(len(self.layers)):
            base = f"esm.encoder.layer.{i}."
            for ours, theirs in [("attn_norm", "attention.LayerNorm"), ("q", "attention.self.query"),
                                 ("k", "attention.self.key"), ("v", "attention.self.value"),
                                 ("out", "attention.output.dense"), ("ffn_norm", "LayerNorm"),
                                 ("fc1", "intermediate.dense"), ("fc2", "output.dense")]:
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = base + theirs + "." + p
        return names

    def load_hf(self, tensors):
        """Copies HF EsmForMaskedLM keys into this module; fails on a missing one."""
        tensors = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in tensors.items()}
        names = self.hf_names()
        for i in range(len(self.layers)):
            # Stored rotary buffers carry ESM2's fp16 rounding: use them when present.
            rotary = f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"
            if rotary in tensors:
                names[f"layers.{i}.inv_freq"] = rotary
        state = self.state_dict()
        with torch.no_grad():
            for ours, theirs in names.items():
                state[ours].copy_(tensors[theirs])

    def forward(self, ids, keep, logits=True):
        x = self.embed(ids)
        if self.token_dropout:
            # Rescale as if 15% x 80% of the tokens were <mask> (zero rows), as in training.
            is_mask = ids == MASK
            x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
            observed = is_mask.sum(-1).float() / keep.sum(-1)
            x = x * (1 - 0.15 * 0.8) / (1 - observed)[:, None, None]
        x = x * keep.unsqueeze(-1).to(x.dtype)
        for layer in self.layers:
            x = layer(x, keep)
        hidden = self.final_norm(x)
        if not logits:
            return hidden, None
        h = self.head_norm(F.gelu(self.head_dense(hidden)))
        return hidden, F.linear(h, self.embed.weight, self.head_bias)  # decoder tied to the embeddings


# ---------------------------------------------------------------- data


def read_fasta(path):
    records, label, seq = [], None, []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if label is not None:
                    records.append((label, "".join(seq)))
                label, seq = line[1:].split()[0] if line[1:].split() else "", []
            elif line:
                seq.append(line)
    if label is not None:
        records.append((label, "".join(seq)))
    return records


def pad_batch(seqs):
    """[cls] residues [eos], right-padded: ids [B, T] int64, keep [B, T] bool."""
    T = max(len(s) for s in seqs) + 2
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s) + 2] = torch.tensor([CLS] + [TOKEN_ID.get(c, UNK) for c in s] + [EOS])
    return ids, ids != PAD


def token_batches(lengths, toks_per_batch, extra=2):
    """fair-esm's FastaBatchedDataset.get_batch_indices (the rule sapling's token_batches follows)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # stable, as std::stable_sort
    batches, current, longest = [], [], 0
    for i in order:
        size = lengths[i] + extra
        if current and max(longest, size) * (len(current) + 1) > toks_per_batch:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    return batches


def train_batch(args):
    """The batch sapling_perf_mlm_train builds: the first B sequences with >= T-2 residues, cropped; or its dump."""
    if args.batch_file:
        t = read_safetensors(args.batch_file)
        return t["input_ids"], t["attention_mask"].bool(), t["labels"]
    seqs = [s[: args.tokens - 2] for _, s in read_fasta(args.fasta) if len(s) >= args.tokens - 2][: args.batch]
    ids, keep = pad_batch(seqs)
    # Mask-only corruption: each real residue independently with p = 0.15 -> <mask>.
    g = torch.Generator().manual_seed(args.seed)
    residue = keep & (ids != CLS) & (ids != EOS)
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & residue
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return ids.masked_fill(chosen, MASK), keep, labels


# ---------------------------------------------------------------- modes


def max_diff(a, b, keep):
    return (a - b).abs()[keep].max().item()


def mode_parity(args):
    if args.impl == "transformers":
        # transformers' EsmForMaskedLM on the batch sapling dumped (esm2_w320 is transformers' own output: not redone).
        if not args.batch_file:
            sys.exit("--mode parity --impl transformers compares with sapling's dump: give --batch-file")
        model = transformers_model(args, "EsmForMaskedLM").eval()
        t = read_safetensors(args.batch_file)
        keep = t["attention_mask"].bool()
        with torch.no_grad():
            logits = model(input_ids=t["input_ids"], attention_mask=keep.long()).logits
        print(f"parity vs sapling (transformers EsmForMaskedLM, {args.hf_attention} attention, "
              f"{os.path.basename(os.path.normpath(args.model))}, {keep.shape[0]} x {keep.shape[1]} masked batch "
              f"from sapling_perf_mlm_train --dump): logits max |diff| {max_diff(logits, t['logits'], keep):.3g}")
        return
    fixture = os.path.join(args.fixtures, "esm2_w320")
    model = ESM2.from_folder(fixture)
    io = read_safetensors(fixture + "_io.safetensors")
    keep = io["attention_mask"].bool()
    hidden, logits = model(io["input_ids"], keep)
    labels = io["labels"]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    grads = {
        "esm.encoder.layer.0.attention.self.query.weight": model.layers[0].q.weight.grad,
        "esm.encoder.layer.0.intermediate.dense.weight": model.layers[0].fc1.weight.grad,
        "lm_head.dense.weight": model.head_dense.weight.grad,
        "esm.embeddings.word_embeddings.weight": model.embed.weight.grad,
    }
    grad_diff = max((g - io["grad." + k]).abs().max().item() for k, g in grads.items())
    print(f"parity vs HF golden fixture esm2_w320 (3 sequences, dim 320): logits max |diff| "
          f"{max_diff(logits, io['logits'], keep):.3g}, last hidden {max_diff(hidden, io['last_hidden_state'], keep):.3g}, "
          f"loss {abs(loss.item() - io['mlm_loss'].item()):.3g}, gradients {grad_diff:.3g}")
    if args.batch_file:
        model = ESM2.from_folder(args.model)
        t = read_safetensors(args.batch_file)
        keep = t["attention_mask"].bool()
        with torch.no_grad():
            _, logits = model(t["input_ids"], keep)
        print(f"parity vs sapling ({os.path.basename(args.model)}, {keep.shape[0]} x {keep.shape[1]} masked batch "
              f"from sapling_perf_mlm_train --dump): logits max |diff| {max_diff(logits, t['logits'], keep):.3g}")


def parameter_groups(model):
    # As sapling's SequenceEncoder::parameter_groups: no weight decay on 1-D tensors (biases, norms).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]


def sync(device):
    # CUDA kernels are asynchronous: wait for them before reading the clock.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- Hugging Face transformers


def quiet_transformers():
    # The load report (EsmModel from an EsmForMaskedLM checkpoint leaves lm_head unused) and progress bar: not results.
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def transformers_config(preset):
    """EsmConfig of a released size, as its config.json on the Hub (no dropout, rotary, token dropout)."""
    from transformers import EsmConfig
    layers, dim, heads = PRESETS[preset]
    return EsmConfig(vocab_size=33, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=4 * dim, max_position_embeddings=1026, position_embedding_type="rotary",
                     token_dropout=True, mask_token_id=MASK, pad_token_id=PAD, emb_layer_norm_before=False,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def transformers_model(args, cls_name, **kwargs):
    """transformers' EsmForMaskedLM / EsmModel: from_pretrained(--model), or a randomly initialised --preset,
    float32 weights (bf16 is autocast), attention kernel --hf-attention."""
    import transformers
    quiet_transformers()
    cls = getattr(transformers, cls_name)
    if args.preset:
        return cls._from_config(transformers_config(args.preset), attn_implementation=args.hf_attention,
                                dtype=torch.float32, **kwargs)
    return cls.from_pretrained(args.model, attn_implementation=args.hf_attention, dtype=torch.float32, **kwargs)


def transformers_tokenizer(args):
    """AutoTokenizer of the model folder (or --tokenizer). A folder without tokenizer files (this repository's
    checkpoints and save-preset folders carry none) gets ESM2's vocab.txt as the released checkpoints ship it."""
    from transformers import AutoTokenizer
    quiet_transformers()
    folder = args.tokenizer or (None if args.preset else args.model)
    if folder and any(os.path.exists(os.path.join(folder, f)) for f in ("vocab.txt", "tokenizer.json")):
        return AutoTokenizer.from_pretrained(folder)
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "vocab.txt"), "w") as fh:
            fh.write("\n".join(VOCAB) + "\n")
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as fh:
            json.dump({"tokenizer_class": "EsmTokenizer", "model_max_length": 1026}, fh)
        return AutoTokenizer.from_pretrained(tmp)
    finally:
        shutil.rmtree(tmp)


def mode_train(args):
    device = torch.device(args.device)
    sdpa = args.attention == "sdpa"
    if sdpa and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"--attention sdpa needs PyTorch >= 2.1 (this is {torch.__version__})")
    name = args.preset or os.path.basename(os.path.normpath(args.model))
    # Random initialisation directly on the device where PyTorch allows it (>= 2.0): a 650M model's default
    # initialisation takes seconds on the CPU, which the campaign's time caps would pay for nothing.
    on_device = device if args.preset and hasattr(torch.device, "__enter__") else contextlib.nullcontext()
    with on_device:
        if args.impl == "transformers":
            model = transformers_model(args, "EsmForMaskedLM").to(device).train()
            forward = lambda ids, keep: model(input_ids=ids, attention_mask=keep.long()).logits
        else:
            model = (ESM2.from_preset(args.preset, sdpa) if args.preset else ESM2.from_folder(args.model, sdpa)).to(device).train()
            forward = lambda ids, keep: model(ids, keep)[1]
    ids, keep, labels = (t.to(device) for t in train_batch(args))
    optimizer = torch.optim.AdamW(parameter_groups(model), lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    residues = int((keep & (ids != CLS) & (ids != EOS)).sum())
    parameters = sum(p.numel() for p in model.parameters())
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.dtype == "bf16"
                else torch.autocast(device.type, enabled=False) if hasattr(torch, "autocast") else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    parts = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            cpu_start = time.process_time()  # all threads: on a loaded machine wall time counts others' turns too
        sync(device)
        t0 = time.perf_counter()
        if autocast is not None:
            with autocast:
                logits = forward(ids, keep)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
        else:
            logits = forward(ids, keep)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        sync(device)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        optimizer.step()
        sync(device)
        t3 = time.perf_counter()
        if step >= args.warmup:
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
            parts["optimizer"] += t3 - t2
    seconds, cpu = sum(parts.values()), time.process_time() - cpu_start
    split = ", ".join(f"{k} {1000 * v / args.steps:.0f} ms" for k, v in parts.items())
    impl = f"transformers EsmForMaskedLM, {args.hf_attention} attention" if args.impl == "transformers" else args.impl
    print(f"torch mlm-train ({impl}, {name}, {args.device}, {args.dtype}): {ids.shape[0]} x {ids.shape[1]} tokens, "
          f"{residues} residues/step, {int((labels != -100).sum())} masked, loss {loss.item():.4f}; per step: {split}")
    print(f"residues/s: {residues * args.steps / seconds:.1f} ({torch.get_num_threads()} threads, {args.steps} steps); "
          f"per CPU-second: {residues * args.steps / cpu:.1f}")
    # Model FLOP/s counted as sapling_perf_mlm_train counts them: 6 x parameters x tokens (padding included).
    tflops = 6.0 * parameters * ids.numel() * args.steps / seconds / 1e12
    record = {"impl": args.impl, "model": name, "device": args.device, "dtype": args.dtype,
              "attention": args.hf_attention if args.impl == "transformers" else args.attention,
              "batch": ids.shape[0], "tokens": ids.shape[1], "residues_per_s": residues * args.steps / seconds,
              "parameters": parameters, "model_tflops": tflops, "loss": loss.item(), "torch": torch.__version__}
    line = f"parameters: {parameters}; model TFLOP/s: {tflops:.3g}"
    if args.peak_tflops > 0:
        record["mfu_percent"] = 100.0 * tflops / args.peak_tflops
        line += f"; MFU: {record['mfu_percent']:.3g}% of {args.peak_tflops:g}"
    if device.type == "cuda":
        record["peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        line += f"; peak GPU memory allocated: {record['peak_allocated_mib']:.0f} MiB"
    print(line)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def mode_save_preset(args):
    """A randomly initialised released size as an HF folder (config.json + model.safetensors), so that
    `sapling embed` and this script's embed mode time the same weights: for timing only."""
    if not args.preset or not args.out:
        sys.exit("--mode save-preset needs --preset and --out")
    torch.manual_seed(args.seed)
    model = ESM2.from_preset(args.preset)
    layers, dim, heads = PRESETS[args.preset]
    state = model.state_dict()
    tensors = {theirs: state[ours] for ours, theirs in model.hf_names().items()}
    tensors["lm_head.decoder.weight"] = state["embed.weight"]  # tied, as ESM2 stores it
    tensors["esm.contact_head.regression.weight"] = torch.zeros(1, layers * heads)
    tensors["esm.contact_head.regression.bias"] = torch.zeros(1)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim // heads, 2).float() / (dim // heads)))
    for i in range(layers):
        tensors[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = inv_freq
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.model, "config.json")) as fh:
        config = json.load(fh)
    config.update(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * dim)
    with open(os.path.join(args.out, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)
    # float32, one copy per name (save_file refuses tensors that share memory, as the tied decoder does).
    save_file({name: t.detach().float().contiguous().clone() for name, t in tensors.items()},
              os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote {args.out}: {args.preset}, {sum(t.numel() for t in tensors.values())} values")


def embed_transformers(args, records):
    """transformers' EsmModel as its users run it: tokenizer, length-sorted batches of --batch-size sequences padded
    to the longest, attention_mask, truncation; per_tok = last_hidden_state without <cls>/<eos>/padding."""
    model = transformers_model(args, "EsmModel", add_pooling_layer=False).eval()
    tokenizer = transformers_tokenizer(args)
    order = sorted(range(len(records)), key=lambda i: len(records[i][1]))  # stable
    batches = [order[k : k + args.batch_size] for k in range(0, len(order), args.batch_size)]
    outputs, residues, tokenizing = {}, 0, 0.0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.dtype == "bf16" else contextlib.nullcontext()
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.inference_mode(), autocast:
        for batch in batches:
            t0 = time.perf_counter()
            encoded = tokenizer([records[i][1] for i in batch], padding=True, truncation=True,
                                max_length=args.truncation + 2, return_tensors="pt")
            tokenizing += time.perf_counter() - t0
            hidden = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
            lengths = encoded["attention_mask"].sum(1) - 2  # residues kept: <cls> and <eos> out
            for b, i in enumerate(batch):
                n = int(lengths[b])
                per_tok = hidden[b, 1 : 1 + n].float().clone()
                outputs[records[i][0]] = (per_tok, per_tok.mean(0))
                residues += n
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    detail = (f"transformers EsmModel, {args.hf_attention} attention, {args.dtype}, {args.batch_size} sequences "
              f"per batch, tokenizer {tokenizing:.2f} s")
    return outputs, residues, seconds, cpu, len(batches), detail


def embed_esm2(args, records):
    sdpa = args.attention == "sdpa"
    model = (ESM2.from_preset(args.preset, sdpa=sdpa) if args.preset else ESM2.from_folder(args.model, sdpa=sdpa)).eval()
    seqs = [s[: args.truncation] for _, s in records]
    batches = token_batches([len(s) for s in seqs], args.toks_per_batch)
    outputs = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    # --dtype bf16: torch.autocast on the CPU, as `sapling embed --dtype bf16` does it (weights stay float32).
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.dtype == "bf16" else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        for batch in batches:
            ids, keep = pad_batch([seqs[i] for i in batch])
            hidden, _ = model(ids, keep, logits=False)
            for b, i in enumerate(batch):
                per_tok = hidden[b, 1 : 1 + len(seqs[i])].float().clone()
                outputs[records[i][0]] = (per_tok, per_tok.mean(0))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    detail = f"esm2, {args.attention} attention, {args.dtype}, fair-esm batches of {args.toks_per_batch} tokens"
    return outputs, sum(len(s) for s in seqs), seconds, cpu, len(batches), detail


def mode_embed(args):
    records = read_fasta(args.fasta)
    embed = embed_transformers if args.impl == "transformers" else embed_esm2
    outputs, residues, seconds, cpu, batches, detail = embed(args, records)
    print(f"torch embed: {len(records)} sequences ({residues} residues) in {seconds:.2f} s, {batches} batches ({detail})")
    if args.compare:
        # Same sequences embedded by `sapling embed`: per-residue and mean differences.
        theirs = read_safetensors(args.compare)
        d = max(max((p - theirs[f"{label}/per_tok"]).abs().max().item(), (m - theirs[f"{label}/mean"]).abs().max().item())
                for label, (p, m) in outputs.items())
        print(f"parity vs sapling embed ({args.compare}): per_tok/mean max |diff| {d:.3g}")
    print(f"residues/s: {residues / seconds:.1f} ({torch.get_num_threads()} threads); per CPU-second: {residues / cpu:.1f}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(here, "..", "..", "shared")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["parity", "train", "embed", "save-preset"], required=True)
    p.add_argument("--out", help="save-preset mode: the folder to write (config.json + model.safetensors)")
    p.add_argument("--model", default=os.path.join(shared, "models", "esm2_t6_8M_uniprot"))
    p.add_argument("--fixtures", default=os.path.join(shared, "fixtures"))
    p.add_argument("--fasta", default=os.path.join(shared, "bench", "embed_100.fasta"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-file", help="ids/mask/labels(/logits) written by sapling_perf_mlm_train --dump")
    p.add_argument("--toks-per-batch", type=int, default=4096, help="embed mode, --impl esm2: padded tokens per batch")
    p.add_argument("--batch-size", type=int, default=8, help="embed mode, --impl transformers: sequences per batch")
    p.add_argument("--truncation", type=int, default=1022)
    p.add_argument("--compare", help="`sapling embed` output of the same FASTA to diff against")
    p.add_argument("--preset", choices=sorted(PRESETS), help="train and embed modes: a randomly initialised released size instead of --model")
    p.add_argument("--impl", choices=["esm2", "transformers"], default="esm2",
                   help="this file's ESM2, or transformers' EsmForMaskedLM (train, parity) / EsmModel (embed), "
                        "loaded from --model or built from --preset")
    p.add_argument("--hf-attention", choices=["sdpa", "eager", "flex_attention", "flash_attention_2"], default="sdpa",
                   help="--impl transformers: attn_implementation (sdpa, torch's fused kernel, is the fastest of "
                        "EsmModel's on the CPU; flash_attention_2 needs CUDA and the flash-attn package)")
    p.add_argument("--tokenizer", help="--impl transformers, embed mode: tokenizer folder (default: --model's, else "
                                       "ESM2's vocabulary)")
    p.add_argument("--device", default="cpu", help="train mode: cpu or cuda[:N]")
    p.add_argument("--dtype", choices=["float32", "bf16"], default="float32",
                   help="bf16 = torch.autocast on the device (CUDA, or the CPU: train and embed modes)")
    p.add_argument("--attention", choices=["manual", "sdpa"], default="manual",
                   help="this file's ESM2: softmax written out (as on the CPU) or the fused scaled_dot_product_attention")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="train mode: report MFU against this peak")
    p.add_argument("--json", help="train mode: append the run's numbers as one JSON line to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    {"parity": mode_parity, "train": mode_train, "embed": mode_embed, "save-preset": mode_save_preset}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
