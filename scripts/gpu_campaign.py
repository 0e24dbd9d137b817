#!/usr/bin/env python3
# Helper of scripts/gpu_campaign.sh: tensor and metric comparisons, log parsing into JSON lines, and the Markdown summary.
"""Subcommands (each result is one JSON line appended to --out; the summary reads them back):

  compare A.safetensors B.safetensors --label L --tolerance T --out F   max |a - b| / max(1, max |a|) per group
  compare-metrics A/metrics.jsonl B/metrics.jsonl --label L --tolerance T --out F   first train line's loss, grad_norm
  bench-log LOG --out F [--set k=v ...]        numbers printed by sapling_perf_mlm_train
  train-metrics METRICS --skip K --out F [--summary summary.json] [--set k=v ...]   residues/s, padding, losses
  seconds-per-step METRICS                     prints the mean seconds of the train steps after the first
  compare-transformers EMB MODEL FASTA --out F  sapling's CPU per_tok against transformers' EsmModel (needs torch,
                                               transformers), on CUDA when there is one; times transformers too
  add-fields --out F [--set k=v ...]           a JSON line from stdin (or {}) with the fields added
  launch-check LOG --metrics M --rc RC --expect-backend B --expect-device D --expect-processes N
               --expect-accumulate A --expect-steps S --label L --out F [--set k=v ...]
                                               what `sapling train` says it launched (device, processes, backend,
                                               micro-batches per process) against what was asked, and its steps
  refusal-check LOG --rc RC --expect REGEX --label L --out F   a run that must fail at once, naming the setting
  bm5-subset INDEX --train-complexes N|all --files OUT --stats OUT   the files of a prepared BM5's held-out complexes
                                               and of its first N training complexes (SHA-256 order of the id)
  summary OUTDIR                               prints OUTDIR's summary in Markdown

Only the standard library, except compare (numpy and safetensors; torch too for bf16 files) and
compare-transformers (torch, transformers, safetensors): the summary must run wherever the campaign does.
The project's venv python (.venv/bin/python) has all of them.
"""
import argparse
import hashlib
import json
import os
import re
import sys

# ---------------------------------------------------------------------------------------------- records


def parse_sets(pairs):
    """k=v pairs: numbers where they parse, empty values dropped."""
    fields = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        if value == "":
            continue
        try:
            fields[key] = int(value)
        except ValueError:
            try:
                fields[key] = float(value)
            except ValueError:
                fields[key] = value
    return fields


def append(path, record):
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


# ---------------------------------------------------------------------------------------------- comparisons


def read_safetensors(path):
    """name -> float64 numpy array, floating-point tensors only (bf16/f16 widened), read with the safetensors
    library: through torch where it is installed (numpy has no bf16), else through numpy."""
    from safetensors import safe_open

    try:
        import torch
    except ImportError:
        torch = None
    out = {}
    with safe_open(path, framework="pt" if torch else "numpy") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            if torch is not None and t.is_floating_point():
                out[name] = t.to(torch.float64).numpy()
            elif torch is None and t.dtype.kind == "f":
                out[name] = t.astype("float64")
    return out


def group_of(key):
    # Embedding files: "<label>/per_tok" -> per_tok; trainer traces: "loss.mlm..." -> loss.
    return key.rsplit("/", 1)[1] if "/" in key else key.split(".", 1)[0]


def cmd_compare(args):
    import numpy as np

    for path in (args.a, args.b):
        if not os.path.exists(path):
            append(args.out, {"label": args.label, "ok": False, "tolerance": args.tolerance, "error": f"{path} missing"})
            print(f"{args.label}: {path} missing")
            return 1
    a, b = read_safetensors(args.a), read_safetensors(args.b)
    groups, missing = {}, sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.shape != y.shape:
            missing.append(key + " (shape)")
            continue
        if x.size == 0:
            continue
        finite = np.isfinite(x) & np.isfinite(y)
        if not (finite == (np.isfinite(x) | np.isfinite(y))).all():
            diff = float("inf")  # a NaN/inf on one side only
        else:
            diff = float(np.abs(x - y)[finite].max(initial=0.0) / max(1.0, float(np.abs(x[finite]).max(initial=0.0))))
        g = group_of(key)
        if diff > groups.get(g, (-1.0, ""))[0]:
            groups[g] = (diff, key)
    worst = max((v[0] for v in groups.values()), default=float("nan"))
    ok = bool(groups) and not missing and worst <= args.tolerance
    record = {"label": args.label, "max_scaled_diff": worst, "tolerance": args.tolerance, "ok": ok,
              "groups": {g: v[0] for g, v in sorted(groups.items())}, "tensors": len(set(a) & set(b))}
    if missing:
        record["mismatched"] = missing[:10]
    append(args.out, record)
    print(f"{args.label}: max scaled diff {worst:.3g} (tolerance {args.tolerance:g}) {'ok' if ok else 'FAILED'}; "
          + ", ".join(f"{g} {v[0]:.2g}" for g, v in sorted(groups.items())))
    return 0 if ok else 1


def first_train_line(path):
    for line in read_jsonl(path):
        if line.get("type") == "train":
            return line
    return None


def cmd_compare_metrics(args):
    a, b = first_train_line(args.a), first_train_line(args.b)
    if a is None or b is None:
        append(args.out, {"label": args.label, "ok": False, "error": "no train line"})
        print(f"{args.label}: no train line in {args.a if a is None else args.b}")
        return 1
    diffs = {}
    for key in ("loss", "grad_norm"):
        diffs[key] = abs(a[key] - b[key]) / max(1e-12, abs(a[key]))
    worst = max(diffs.values())
    ok = worst <= args.tolerance
    append(args.out, {"label": args.label, "max_scaled_diff": worst, "tolerance": args.tolerance, "ok": ok,
                      "groups": diffs, "values": {k: [a[k], b[k]] for k in diffs}})
    print(f"{args.label}: relative diff loss {diffs['loss']:.3g}, grad_norm {diffs['grad_norm']:.3g} "
          f"(tolerance {args.tolerance:g}) {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def read_fasta(path):
    records = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                records.append([line[1:].split()[0] if line[1:].split() else "", ""])
            elif line and records:
                records[-1][1] += line
    return records


def cmd_compare_transformers(args):
    """Hugging Face's EsmModel on the same weights and sequences, 4096-token length-sorted batches, fp32."""
    import time

    import torch
    from transformers import EsmModel

    ours = read_safetensors(args.embeddings)
    records = read_fasta(args.fasta)
    vocab = "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>".split()
    index = {t: i for i, t in enumerate(vocab)}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = EsmModel.from_pretrained(args.model, dtype=torch.float32, add_pooling_layer=False).to(device).eval()
    order = sorted(range(len(records)), key=lambda i: len(records[i][1]))
    worst, residues, batches, batch = 0.0, 0, [], []
    for i in order:
        if batch and (min(len(records[i][1]), 1022) + 2) * (len(batch) + 1) > 4096:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            width = max(min(len(records[i][1]), 1022) for i in batch) + 2
            ids = torch.full((len(batch), width), 1, dtype=torch.long)
            for b, i in enumerate(batch):
                seq = records[i][1][:1022]
                ids[b, : len(seq) + 2] = torch.tensor([0] + [index.get(c, 3) for c in seq] + [2])
            ids = ids.to(device)
            hidden = model(input_ids=ids, attention_mask=(ids != 1).long()).last_hidden_state.float().cpu().double().numpy()
            for b, i in enumerate(batch):
                n = min(len(records[i][1]), 1022)
                residues += n
                ref = hidden[b, 1 : n + 1]
                mine = ours[f"{records[i][0]}/per_tok"][:n]
                worst = max(worst, float(abs(mine - ref).max() / max(1.0, float(abs(ref).max()))))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ok = worst <= args.tolerance
    append(args.out, {"label": f"embed base per_tok: sapling cpu float32 vs transformers EsmModel {device.type} float32",
                      "max_scaled_diff": worst, "tolerance": args.tolerance, "ok": ok, "groups": {"per_tok": worst},
                      "transformers_residues_per_s": residues / seconds})
    print(f"sapling cpu per_tok vs transformers {device.type}: max scaled diff {worst:.3g} "
          f"({'ok' if ok else 'FAILED'}); transformers {residues / seconds:.0f} residues/s")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- logs


def cmd_bench_log(args):
    """sapling_perf_mlm_train's last lines: residues/s, parameters, model TFLOP/s, MFU, peak resident memory."""
    text = open(args.log).read()
    patterns = {"residues_per_s": r"^residues/s: ([0-9.e+]+)", "parameters": r"parameters: (\d+)",
                "model_tflops": r"model TFLOP/s: ([0-9.e+-]+)", "mfu_percent": r"MFU: ([0-9.e+-]+)%",
                "peak_rss_mib": r"peak resident memory: (\d+) MiB", "loss": r"loss ([0-9.e+-]+);",
                "tokens": r"x (\d+) tokens", "batch": r"mlm-train: (\d+) x"}
    record = {}
    for key, pattern in patterns.items():
        m = re.search(pattern, text, re.M)
        if m:
            record[key] = float(m.group(1)) if "." in m.group(1) or "e" in m.group(1) else int(m.group(1))
    if "residues_per_s" not in record:
        print(f"{args.log}: no 'residues/s:' line", file=sys.stderr)
        return 1
    record.update(parse_sets(args.set))
    append(args.out, record)
    return 0


def cmd_add_fields(args):
    text = sys.stdin.read().strip()
    record = json.loads(text) if text else {}
    record.update(parse_sets(args.set))
    append(args.out, record)
    return 0


def train_lines(path):
    return [line for line in read_jsonl(path) if line.get("type") == "train"]


def step_seconds(line):
    return line["residues"] / line["residues_per_s"] if line.get("residues_per_s") else 0.0


def cmd_train_metrics(args):
    lines = train_lines(args.metrics)
    timed = [line for line in lines if line.get("step", 0) > args.skip]
    if not timed:
        print(f"{args.metrics}: no train step after step {args.skip}", file=sys.stderr)
        return 1
    seconds = sum(step_seconds(line) for line in timed)
    residues = sum(line.get("residues", 0) for line in timed)
    record = {"steps": len(lines), "steps_timed": len(timed), "residues_per_s": residues / seconds if seconds else None,
              "residues_per_step": residues / len(timed), "proteins_per_step": sum(l.get("proteins", 0) for l in timed) / len(timed),
              "loss_first": lines[0].get("loss"), "loss_last": lines[-1].get("loss"),
              "seconds_per_step": seconds / len(timed)}
    paddings = [line["padding"] for line in timed if "padding" in line]
    if paddings:
        # Token-weighted would need the token counts; the steps' mean is what perf/train_batching.sh reports too.
        record["padding"] = sum(paddings) / len(paddings)
    for key in ("mlm", "structure_token", "contrastive"):
        if key in lines[-1]:
            record[key + "_last"] = lines[-1][key]
    if args.summary and os.path.exists(args.summary):
        with open(args.summary) as fh:
            summary = json.load(fh)
        record["residues"] = summary.get("residues")
        record["train_seconds"] = summary.get("train_seconds")
        record["valid_before"] = summary.get("valid_before", {}).get("loss")
        record["valid_after"] = summary.get("valid_after", {}).get("loss")
        for k in ("mlm", "structure_token", "contrastive"):
            if k in summary.get("valid_after", {}):
                record["valid_after_" + k] = summary["valid_after"][k]
    record.update(parse_sets(args.set))
    append(args.out, record)
    return 0


def cmd_seconds_per_step(args):
    lines = train_lines(args.metrics)
    timed = lines[1:] or lines  # the first step pays the allocator's and kernels' warm-up
    if not timed:
        return 1
    print(f"{sum(step_seconds(line) for line in timed) / len(timed):.4f}")
    return 0


# ---------------------------------------------------------------------------------------------- launches


def cmd_launch_check(args):
    """The trainer's start-up lines: 'training <family> (N tensors) on DEVICE (...), P process(es); ...' and
    'step batch: A micro-batch(es) per process x P process(es) (BACKEND) ...'."""
    text = open(args.log, errors="replace").read() if os.path.exists(args.log) else ""
    record = {"check": args.label, "exit_status": args.rc}
    m = re.search(r"training \S+ \(\d+ tensors\) on (\S+) \(.*?\), (\d+) process\(es\)", text)
    if m:
        record["device"], record["processes"] = m.group(1), int(m.group(2))
    m = re.search(r"step batch: (\d+) micro-batch\(es\) per process x (\d+) process\(es\) \((\w+)\)", text)
    if m:
        record["accumulate"], record["backend"] = int(m.group(1)), m.group(3)
    lines = train_lines(args.metrics) if args.metrics else []
    record["steps"] = len(lines)
    if lines:
        record["loss_first"], record["loss_last"] = lines[0].get("loss"), lines[-1].get("loss")
    expected = {"device": args.expect_device, "processes": args.expect_processes, "backend": args.expect_backend,
                "accumulate": args.expect_accumulate}
    record["expected"] = {k: v for k, v in expected.items() if v is not None}
    problems = [f"{k} {record.get(k, 'not printed')} (expected {v})" for k, v in record["expected"].items()
                if record.get(k) != v]
    if args.rc != 0:
        problems.append(f"exit status {args.rc}")
    if len(lines) < args.expect_steps:
        problems.append(f"{len(lines)} train steps in the metrics (expected {args.expect_steps})")
    finite = [x for x in (record.get("loss_first"), record.get("loss_last")) if isinstance(x, (int, float))]
    if lines and (len(finite) < 2 or any(x != x or abs(x) == float("inf") for x in finite)):
        problems.append("loss missing or not finite")
    error = next((line for line in text.splitlines() if line.startswith("error")), None)
    if error:
        record["error"] = error[:300]
    record["ok"] = not problems
    if problems:
        record["problems"] = problems
    record.update(parse_sets(args.set))
    append(args.out, record)
    print(f"{args.label}: {'ok' if record['ok'] else 'FAILED: ' + '; '.join(problems)} (device {record.get('device')}, "
          f"backend {record.get('backend')}, {record.get('processes')} process(es), {record.get('accumulate')} "
          f"micro-batch(es) per process, {len(lines)} steps)")
    return 0 if record["ok"] else 1


def cmd_refusal_check(args):
    text = open(args.log, errors="replace").read() if os.path.exists(args.log) else ""
    error = next((line for line in text.splitlines() if line.startswith("error")), "")
    named = re.search(args.expect, error, re.I) is not None
    timed_out = args.rc in (124, 137)
    ok = args.rc != 0 and not timed_out and named
    record = {"check": "refused: " + args.label, "exit_status": args.rc, "expected": {"error matching": args.expect},
              "error": error[:300] or text[-300:], "ok": ok}
    append(args.out, record)
    print(f"refused: {args.label}: {'ok' if ok else 'FAILED'} (exit {args.rc}{', timed out' if timed_out else ''}): "
          f"{error or 'no error line'}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- staging


def cmd_bm5_subset(args):
    """Every held-out (non-train) complex of a prepared BM5 and the first N training complexes in the order of the
    SHA-256 of their split group (the complex id): deterministic, and a larger N keeps the smaller N's complexes."""
    with open(args.index) as fh:
        chains = json.load(fh)["chains"]
    groups = {}
    for c in chains:
        g = groups.setdefault(c["group"], {"splits": set(), "files": set(), "residues": 0, "chains": 0})
        g["splits"].add(c["split"])
        g["files"].add(c["source"])
        g["residues"] += c.get("length", 0)
        g["chains"] += 1
    train = sorted((k for k, g in groups.items() if g["splits"] == {"train"}),
                   key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    held_out = sorted(k for k in groups if k not in set(train))
    n = len(train) if args.train_complexes == "all" else int(args.train_complexes)
    if n < 1 or n > len(train):
        print(f"--train-complexes {args.train_complexes}: between 1 and {len(train)}, or all", file=sys.stderr)
        return 1
    chosen = train[:n] + held_out
    files = sorted(f for k in chosen for f in groups[k]["files"])
    with open(args.files, "w") as fh:
        fh.write("\n".join(files) + "\n")
    stats = {"bm5_train_complexes": f"{n} of {len(train)}", "bm5_held_out_complexes": len(held_out),
             "bm5_files": len(files), "bm5_chains": sum(groups[k]["chains"] for k in chosen),
             "bm5_residues": sum(groups[k]["residues"] for k in chosen),
             "bm5_train_residues": sum(groups[k]["residues"] for k in train[:n]),
             "bm5_all_residues": sum(g["residues"] for g in groups.values())}
    with open(args.stats, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in stats.items()))
    print(", ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


# ---------------------------------------------------------------------------------------------- summary


def fmt(value, digits=3, suffix=""):
    if value is None or value == "":
        return "n/a"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}{suffix}"
        return f"{value:.{digits}g}{suffix}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def ratio(a, b):
    return f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def read_versions(outdir):
    versions = {}
    path = os.path.join(outdir, "versions.txt")
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                key, _, value = line.rstrip("\n").partition("=")
                versions[key] = value
    return versions


def read_steps(outdir):
    steps = []
    path = os.path.join(outdir, "steps.tsv")
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t") + [""] * 5
                steps.append(parts[:5])
    return steps


def section_parity(outdir):
    records = read_jsonl(os.path.join(outdir, "parity", "results.jsonl"))
    if not records:
        return "No comparison was recorded."
    rows = [[r["label"], fmt(r.get("max_scaled_diff"), 2), fmt(r.get("tolerance")), "yes" if r.get("ok") else "**no**",
             ", ".join(f"{g} {fmt(v, 2)}" for g, v in r.get("groups", {}).items()) or r.get("error", "")] for r in records]
    return ("Scaled difference: max |a - b| / max(1, max |a|) over each tensor (loss and gradient norm: relative).\n\n"
            + table(["comparison", "max scaled diff", "tolerance", "within", "per group"], rows))


def section_nccl(outdir, versions):
    records = read_jsonl(os.path.join(outdir, "nccl", "results.jsonl"))
    if not records:
        return "Nothing was recorded."
    rows = []
    for r in records:
        expected = ", ".join(f"{k} {v}" for k, v in r.get("expected", {}).items())
        if "device" in r or "backend" in r:
            observed = (f"device {r.get('device', '?')}, backend {r.get('backend', '?')}, {r.get('processes', '?')} "
                        f"process(es), accumulate {r.get('accumulate', '?')}; {r.get('steps', 0)} steps, loss "
                        f"{fmt(r.get('loss_first'), 4)} -> {fmt(r.get('loss_last'), 4)}")
        else:
            observed = f"exit {r.get('exit_status')}: `{r.get('error', '').replace('|', '/')[:160]}`"
        if r.get("problems"):
            observed += " (" + "; ".join(r["problems"]) + ")"
        rows.append([r.get("check", "?"), expected, observed, "yes" if r.get("ok") else "**no**"])
    backends = versions.get("build_features", "")
    return ("`sapling train` launched as torchrun launches one process (WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 MASTER_ADDR "
            "MASTER_PORT): the tiny fixture, masked LM only, on the sample, `[train] backend` set (NCCL on CUDA, Gloo in the CPU "
            "rehearsal), `device = \"cuda\"` (which is cuda:LOCAL_RANK), `global_batch` = 2 x proteins_per_batch "
            "(accumulate derived from WORLD_SIZE); then settings that must be refused by name. With one process the "
            "trainer makes no process group: this checks the backend's resolution, the device choice and the launch, "
            "not NCCL's collectives, which need 2 or more GPUs (NCCL refuses two ranks on one device; "
            "tests/test_train_cli.cpp's `[nccl]` test). Compiled-in: " + (backends or "n/a") + ".\n\n"
            + table(["check", "expected", "observed", "as expected"], rows))


def section_mlm(outdir, versions):
    records = read_jsonl(os.path.join(outdir, "mlm", "results.jsonl"))
    if not records:
        return "No measurement was recorded."
    shapes = []
    for r in records:
        if r.get("model") not in shapes:
            shapes.append(r.get("model"))
    by = {(r.get("impl"), r.get("model")): r for r in records}
    rows = []
    for shape in shapes:
        s, t, h = by.get(("sapling", shape), {}), by.get(("torch_esm2", shape), {}), by.get(("torch_transformers", shape), {})
        any_r = s or t or h
        mem = " / ".join(fmt(r.get("peak_gpu_mib")) for r in (s, t, h))
        rows.append([f"{shape} ({fmt(any_r.get('parameters'))} params), {any_r.get('batch', '?')} x {any_r.get('tokens', '?')}",
                     fmt(s.get("residues_per_s")), fmt(s.get("mfu_percent"), 3, "%"),
                     fmt(t.get("residues_per_s")), fmt(t.get("mfu_percent"), 3, "%"),
                     fmt(h.get("residues_per_s")), fmt(h.get("mfu_percent"), 3, "%"),
                     ratio(s.get("residues_per_s"), t.get("residues_per_s")),
                     ratio(s.get("residues_per_s"), h.get("residues_per_s")), mem])
    dtype = next((r.get("dtype") for r in records if r.get("dtype")), "?")
    attention = next((r.get("attention") for r in records if r.get("attention")), "?")
    return (f"Forward, masked-LM loss, backward and AdamW on one fixed batch ({dtype}; bf16 = autocast, float32 weights "
            "and optimiser), timed steps after warm-up, residues/s; MFU = 6 x parameters x tokens per second over the "
            f"peak given. PyTorch eager: `perf/torch_esm2.py` (this repository's ESM2 in plain PyTorch, attention "
            f"`{attention}`) and transformers' `EsmForMaskedLM` (SDPA attention, its default), both randomly initialised at "
            "the same size, same process layout (one process per run). Peak GPU memory: nvidia-smi, device-wide, sampled "
            "every 100 ms (context and allocator cache included).\n\n"
            + table(["shape", "sapling res/s", "MFU", "PyTorch (torch_esm2) res/s", "MFU", "transformers res/s", "MFU",
                     "sapling / torch_esm2", "sapling / transformers", "peak GPU MiB (sapling / torch_esm2 / transformers)"],
                    rows))


def section_saesm2(outdir):
    records = read_jsonl(os.path.join(outdir, "saesm2", "results.jsonl"))
    if not records:
        return "No measurement was recorded."
    rows = [[r.get("batching"), fmt(r.get("steps_timed")), fmt(r.get("residues_per_s")), fmt(r.get("residues_per_step")),
             fmt(r.get("proteins_per_step")),
             fmt(100 * r["padding"], 3, "%") if isinstance(r.get("padding"), float) else "n/a",
             fmt(r.get("peak_gpu_mib")), fmt(r.get("peak_rss_mib")), fmt(r.get("loss_last"), 4), r.get("error", "")]
            for r in records]
    return ("`sapling train` with `recipes/method.toml` (three losses, excess-loss selection of 80%, published "
            "normalisation, precision auto = bf16 autocast on CUDA), one micro-batch per step (8 proteins at most; "
            "tokens: 4096 padded tokens, packed: 4096 real tokens), valid split off; residues/s from the trainer's "
            "metrics (steady state: the steps after the first ones), padding = share of the rows' tokens that are "
            "padding. The recipes are `saesm2/saesm2*.toml` (the reference's folder comes from one step of "
            "`saesm2_reference.toml`), the overrides `saesm2/overrides.txt`.\n\n"
            + table(["batching", "steps timed", "residues/s", "residues/step", "proteins/step", "padding",
                     "peak GPU MiB", "peak host RSS MiB", "loss (last)", "error"], rows))


def section_prepare(outdir):
    records = read_jsonl(os.path.join(outdir, "prepare", "results.jsonl"))
    if not records:
        return "No measurement was recorded."
    rows = [[r["label"], fmt(r.get("max_scaled_diff"), 2), "yes" if r.get("ok") else "**no**"] for r in records
            if "max_scaled_diff" in r or "ok" in r]
    runs = [[r["label"], fmt(r.get("files")), fmt(r.get("residues")), fmt(r.get("embed_seconds")),
             fmt(r.get("wall_seconds")), fmt(r.get("residues_per_s"))] for r in records if "residues" in r]
    text = ""
    if rows:
        text += ("Stored float16 pGNN rows of the sample, device against CPU (scaled difference, tolerance 4e-3):\n\n"
                 + table(["comparison", "max scaled diff", "within"], rows) + "\n\n")
    if runs:
        text += ("`sapling prepare` with 3Di and the pGNN on replicated sample structures (perf/replicate_structures.py); "
                 "residues/s over the whole run (reading, 3Di, graphs, the encoder, writing):\n\n"
                 + table(["run", "files", "residues", "encoder s", "wall s", "residues/s"], runs))
    return text


def eval_metric(outdir, name, key):
    path = os.path.join(outdir, "science", name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh).get("metrics", {}).get(key)


def section_science(outdir):
    records = read_jsonl(os.path.join(outdir, "science", "results.jsonl"))
    trains = {r["arm"]: r for r in records if r.get("kind") == "train"}
    if not records:
        return "Nothing was recorded."
    rows = [[arm, fmt(r.get("steps")), fmt(r.get("residues")), fmt(r.get("train_seconds"), 3), fmt(r.get("wall_s")),
             fmt(r.get("residues_per_s")), f"{fmt(r.get('valid_before'), 4)} -> {fmt(r.get('valid_after'), 4)}",
             fmt(r.get("loss_last"), 4)] for arm, r in trains.items()]
    out = []
    if rows:
        out.append(table(["arm", "steps", "residues", "train s", "wall s", "residues/s", "valid loss before -> after",
                          "train loss (last step)"], rows))
    metrics = [("contact_unsupervised", "long_P@L/5"), ("contact_unsupervised", "long_P@L"),
               ("contact_unsupervised", "medium_P@L/5"), ("contact_probe", "long_P@L/5"), ("contact_probe", "long_P@L"),
               ("contact_probe", "medium_P@L/5")]
    eval_rows = []
    for arm in ("base", "mlm_only", "full"):
        values = [eval_metric(outdir, f"{arm}_{task}.json", key) for task, key in metrics]
        if any(v is not None for v in values):
            eval_rows.append([arm] + [fmt(v, 3) for v in values])
    if eval_rows:
        out.append("Contact precision on the held-out BM5 unbound chains (`science/<arm>_<task>.json`):\n\n" + table(
            ["model"] + [f"{'unsup' if t == 'contact_unsupervised' else 'probe'} {k}" for t, k in metrics], eval_rows))
    return "\n\n".join(out)


def cmd_summary(args):
    outdir = args.outdir
    v = read_versions(outdir)
    steps = read_steps(outdir)
    rehearsal = v.get("mode") == "rehearsal"
    gpu = v.get("gpu", "no GPU")
    title = ("CPU rehearsal of the GPU campaign" if rehearsal else "GPU campaign") + f", {v.get('date', '?')}"
    lines = [f"# sapling {title} ({gpu.split(',')[0]})", ""]
    if rehearsal:
        lines += ["**Rehearsal**: every step on the CPU with tiny shapes and a few steps, on the repository's own "
                  "sample; the numbers check the plumbing, not performance or science.", ""]
    rows = [
        ["machine", f"{gpu}; driver {v.get('driver', 'n/a')}; {v.get('cpu', '?')}"],
        ["LibTorch", f"{v.get('libtorch_version', '?')} (SAPLING_LIBTORCH={v.get('libtorch_route') or '?'}; "
                     f"{v.get('libtorch') or v.get('sapling_python') or '?'})"],
        ["compiled in", v.get("build_features") or "n/a"],
        ["Python torch", v.get("python_torch", "?")],
        ["compiler", v.get("cxx", "?")],
        ["commit", v.get("commit", "?")],
    ]
    if v.get("stage_bm5_train_complexes"):  # what --stage packed (GPU runs)
        rows.append(["staged data", f"BM5 subset: {v['stage_bm5_train_complexes']} training complexes and all "
                     f"{v.get('stage_bm5_held_out_complexes', '?')} held-out ones ({v.get('stage_bm5_chains', '?')} chains, "
                     f"{v.get('stage_bm5_residues', '?')} of {v.get('stage_bm5_all_residues', '?')} residues); "
                     f"{v.get('stage_bm5_eval_files', '?')} held-out unbound structures; staged {v.get('stage_staged', '?')}"])
    rows.append(["wall time", f"{v.get('wall', '?')} s of {v.get('budget', '?')} s ({v.get('time', '')})"])
    lines += [table(["", ""], rows), "", "## Steps", ""]
    lines.append(table(["step", "status", "seconds", "cap (s)", "notes"],
                       [[s[0], s[1] if s[1] == "passed" else f"**{s[1]}**", s[2], s[3], s[4]] for s in steps]))
    lines += ["", "## 2. Parity: CUDA against CPU", "", section_parity(outdir),
              "", "## 2b. Data-parallel backend in a one-process world", "", section_nccl(outdir, v),
              "", "## 3. MLM step: sapling against PyTorch eager, same GPU, same run", "", section_mlm(outdir, v),
              "", "## 4. The full SaESM2 step on BM5's chain lengths, per batching", "", section_saesm2(outdir),
              "", "## 4b. Dataset preparation with the pGNN on the device (docs/scale.md)", "", section_prepare(outdir),
              "", "## 5. Science: full method against the MLM-only control", "",
              "docs/results.md's reproduction at GPU scale: the bundled 8M-shaped ESM2 trained by "
              "`recipes/repro/esm2_full.toml` (three losses, excess-loss selection against the reference) and "
              "`esm2_mlm_only.toml` (the control) with the same seed, batching (2048-token batches, crops of 512) and "
              "steps, so on the same residues; the reference is `esm2_reference.toml` (PSICOV high-quality chains, its "
              "best validation weights). Steps per arm: what the time left allowed (see the science step's notes). "
              "On the GPU the BM5 training chains are the staged subset (\"staged data\" above; all of BM5's held-out "
              "complexes travel, so the held-out set is the reproduction's). "
              "Contacts on the unbound structures of the held-out BM5 complexes (20 proteins fit the regression / "
              "probe, the rest test).", "",
              section_science(outdir), ""]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare")
    c.add_argument("a"), c.add_argument("b")
    c.add_argument("--label", required=True), c.add_argument("--tolerance", type=float, required=True)
    c.add_argument("--out", required=True)
    c = sub.add_parser("compare-metrics")
    c.add_argument("a"), c.add_argument("b")
    c.add_argument("--label", required=True), c.add_argument("--tolerance", type=float, required=True)
    c.add_argument("--out", required=True)
    c = sub.add_parser("bench-log")
    c.add_argument("log"), c.add_argument("--out", required=True), c.add_argument("--set", nargs="*")
    c = sub.add_parser("add-fields")
    c.add_argument("--out", required=True), c.add_argument("--set", nargs="*")
    c = sub.add_parser("train-metrics")
    c.add_argument("metrics"), c.add_argument("--skip", type=int, default=0), c.add_argument("--summary")
    c.add_argument("--out", required=True), c.add_argument("--set", nargs="*")
    c = sub.add_parser("seconds-per-step")
    c.add_argument("metrics")
    c = sub.add_parser("compare-transformers")
    c.add_argument("embeddings"), c.add_argument("model"), c.add_argument("fasta")
    c.add_argument("--tolerance", type=float, default=1e-4), c.add_argument("--out", required=True)
    c = sub.add_parser("launch-check")
    c.add_argument("log"), c.add_argument("--metrics"), c.add_argument("--rc", type=int, required=True)
    c.add_argument("--expect-backend"), c.add_argument("--expect-device")
    c.add_argument("--expect-processes", type=int), c.add_argument("--expect-accumulate", type=int)
    c.add_argument("--expect-steps", type=int, default=1), c.add_argument("--label", required=True)
    c.add_argument("--out", required=True), c.add_argument("--set", nargs="*")
    c = sub.add_parser("refusal-check")
    c.add_argument("log"), c.add_argument("--rc", type=int, required=True), c.add_argument("--expect", required=True)
    c.add_argument("--label", required=True), c.add_argument("--out", required=True)
    c = sub.add_parser("bm5-subset")
    c.add_argument("index"), c.add_argument("--train-complexes", required=True)
    c.add_argument("--files", required=True), c.add_argument("--stats", required=True)
    c = sub.add_parser("summary")
    c.add_argument("outdir")
    args = p.parse_args()
    handlers = {"compare": cmd_compare, "compare-metrics": cmd_compare_metrics, "bench-log": cmd_bench_log,
                "add-fields": cmd_add_fields, "train-metrics": cmd_train_metrics,
                "seconds-per-step": cmd_seconds_per_step, "compare-transformers": cmd_compare_transformers,
                "launch-check": cmd_launch_check, "refusal-check": cmd_refusal_check, "bm5-subset": cmd_bm5_subset,
                "summary": cmd_summary}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
