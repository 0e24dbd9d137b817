#!/usr/bin/env python3
"""The published structure-alignment loss, written from the method's description for the golden test.

Reads what `sapling train RECIPE --inspect-batch FILE` wrote for one micro-batch (the batch, the pLM outputs of
the trainee and of the reference model, the loss heads' weights) and recomputes, in plain PyTorch and without
any sapling code, every loss term, the residues the excess-loss selector keeps and the total, the way the
published trainer does (design/METHOD.md; docs/fidelity.md cites the official lines):

  h      = L2-normalised last hidden state, at every position
  MLM    = sum of cross-entropy at masked positions / (L_mean * 0.15 * B)
  struct = MLP(h) cross-entropy at every position with a structure label; keep the top int(ratio * N) by
           (loss - reference loss); sum of kept / (L_mean * B * ratio)
  contr. = InfoNCE over all real residues of the batch, logits = clamp(exp(t), min=0.01) * z_s z_g^T,
           z = normalize(W x + b); each direction selected like struct; their mean
  total  = w_mlm * MLM + w_struct * struct + w_contr * contr.

Those use sapling's own masks and head weights, so it also checks what they must be at step 0 (`--inspect-batch`
builds the run afresh: the trainee's heads are as initialised; the reference's heads come from its run's best/):

  init    the trainee's temperature t = log(1 / 0.07); its heads are PyTorch's nn.Linear default,
          U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weights and biases
  widths  projections min(H, pGNN width) for the trainee and the reference (the official output_D); structure
          head Linear(H, H), ReLU, Linear(H, 26) (Foldseek's 26 classes)
  masks   only real residues masked (never BOS/EOS/pad), every masked residue is <mask> (no 80/10/10), the
          masked count consistent with Bernoulli(0.15) per real residue (exact binomial test), and the masks
          compared with masks this script draws itself from the published rule on the same residues (the
          masked count and the masked residues' mean relative position within their protein)

The MLM loss cannot be recomputed on masks drawn here: the dumped logits are of sapling's masked input, and a
different mask is a different forward pass.

Then compares with sapling's values and exits non-zero when any differs by more than the tolerance, or when a
check above fails.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "perf"))
from torch_esm2 import read_safetensors  # noqa: E402  (the repository's plain safetensors reader)


def cross_entropy_rows(logits, targets):
    return F.cross_entropy(logits.double(), targets, reduction="none")


def structure_logits(h, heads, prefix):
    hidden = F.linear(h, heads[prefix + "hidden_layer.weight"].double(), heads[prefix + "hidden_layer.bias"].double())
    return F.linear(F.relu(hidden), heads[prefix + "output_layer.weight"].double(),
                    heads[prefix + "output_layer.bias"].double())


def contrastive_rows(h, g, heads, prefix):
    z_s = F.normalize(F.linear(h, heads[prefix + "seq_projection.weight"].double(),
                               heads[prefix + "seq_projection.bias"].double()), dim=-1)
    z_g = F.normalize(F.linear(g, heads[prefix + "struct_projection.weight"].double(),
                               heads[prefix + "struct_projection.bias"].double()), dim=-1)
    scale = heads[prefix + "logit_scale"].double().exp().clamp(min=0.01)
    similarity = scale * z_s @ z_g.T
    labels = torch.arange(similarity.shape[0])
    return cross_entropy_rows(similarity, labels), cross_entropy_rows(similarity.T, labels)


def top_k(excess, ratio):
    k = int(ratio * excess.shape[0])  # Python's truncation, as the official top-k
    return torch.topk(excess, k).indices


def per_residue_terms(t, side, heads_prefix):
    """Per-residue losses of one model (trainee or reference) on the batch."""
    logits, hidden = t[side + ".logits"].double(), t[side + ".last_hidden"].double()
    B, T, V = logits.shape
    h = F.normalize(hidden, dim=-1)
    out = {}
    labels = t["batch.mlm_labels"]
    masked = labels.view(-1) != -100
    out["mlm"] = cross_entropy_rows(logits.view(-1, V)[masked], labels.view(-1)[masked])
    struct_labels = t["batch.structure_tokens"].view(-1)
    scored = struct_labels != -100
    out["structure_token"] = cross_entropy_rows(
        structure_logits(h, t, heads_prefix + "structure_token.").view(B * T, -1)[scored], struct_labels[scored])
    real = t["batch.residue_mask"].view(-1).bool()
    g = t["batch.pgnn_embeddings"].double().view(B * T, -1)[real]
    s2g, g2s = contrastive_rows(h.view(B * T, -1)[real], g, t, heads_prefix + "contrastive.")
    out["contrastive.seq_to_struct"], out["contrastive.struct_to_seq"] = s2g, g2s
    return out


# ---------------------------------------------------------------- the initial state and the masks


def binomial_p_values(n, p):
    """Two-sided p-value of each count k = 0..n of Bernoulli(p) trials: 2 x the smaller tail, at most 1."""
    k = torch.arange(n + 1, dtype=torch.float64)
    if p <= 0.0 or p >= 1.0:
        return (k == (0 if p <= 0.0 else n)).double()
    log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
               + k * math.log(p) + (n - k) * math.log1p(-p))
    pmf = log_pmf.exp()
    lower = pmf.cumsum(0)
    upper = pmf.flip(0).cumsum(0).flip(0)
    return (2 * torch.minimum(lower, upper)).clamp(max=1.0)


def binomial_two_sided(k, n, p):
    return binomial_p_values(n, p)[k].item()


def binomial_acceptance(n, p, alpha):
    """The counts k whose two-sided p-value is at least alpha, as (lowest, highest)."""
    accepted = (binomial_p_values(n, p) >= alpha).nonzero().flatten()
    return (int(accepted[0]), int(accepted[-1])) if accepted.numel() else (0, -1)


def check_initial_heads(t, args, failures):
    """The trainee's heads at step 0 and both models' head widths, against the published construction."""
    H = t["model.last_hidden"].shape[-1]
    G = t["batch.pgnn_embeddings"].shape[-1]
    width = args.projection_dim if args.projection_dim > 0 else min(H, G)

    t0 = math.log(1.0 / args.initial_temperature)
    t_dumped = t["heads.contrastive.logit_scale"].double().item()
    print(f"initial temperature: t = {t_dumped:.8f}, published log(1/{args.initial_temperature:g}) = {t0:.8f} "
          f"(scale {math.exp(t_dumped):.6f} vs {math.exp(t0):.6f})")
    if abs(t_dumped - t0) > 1e-6:  # float32 holds t to ~2.4e-7
        failures.append(f"initial temperature: t = {t_dumped:.8f}, published {t0:.8f}")

    expected = {"heads.contrastive.seq_projection.weight": (width, H),
                "heads.contrastive.seq_projection.bias": (width,),
                "heads.contrastive.struct_projection.weight": (width, G),
                "heads.contrastive.struct_projection.bias": (width,),
                "heads.structure_token.hidden_layer.weight": (H, H),
                "heads.structure_token.hidden_layer.bias": (H,)}
    if args.structure_classes > 0:
        expected["heads.structure_token.output_layer.weight"] = (args.structure_classes, H)
        expected["heads.structure_token.output_layer.bias"] = (args.structure_classes,)
    if "reference.last_hidden" in t:
        H_ref = t["reference.last_hidden"].shape[-1]
        expected["reference_heads.contrastive.seq_projection.weight"] = (min(H_ref, G), H_ref)
        expected["reference_heads.contrastive.struct_projection.weight"] = (min(H_ref, G), G)
        if args.structure_classes > 0:
            expected["reference_heads.structure_token.output_layer.weight"] = (args.structure_classes, H_ref)
    for key, shape in expected.items():
        got = tuple(t[key].shape) if key in t else None
        if got != shape:
            failures.append(f"{key}: shape {got}, published {shape}")
    print(f"projection width: {t['heads.contrastive.seq_projection.weight'].shape[0]} (H = {H}, pGNN {G}: "
          f"published min(H, pGNN) = {min(H, G)})" +
          (f"; reference {t['reference_heads.contrastive.seq_projection.weight'].shape[0]}"
           if "reference_heads.contrastive.seq_projection.weight" in t else ""))
    if "reference_heads.contrastive.logit_scale" in t:
        t_ref = t["reference_heads.contrastive.logit_scale"].double().item()
        print(f"reference temperature: t = {t_ref:.8f} (its run's best/, trained: not an initial value)")

    # nn.Linear's default: weight kaiming_uniform(a = sqrt(5)) and bias, both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    worst = 0.0
    for layer in ("contrastive.seq_projection", "contrastive.struct_projection", "structure_token.hidden_layer",
                  "structure_token.output_layer"):
        weight = t.get("heads." + layer + ".weight")
        if weight is None:
            continue
        bound = 1.0 / math.sqrt(weight.shape[1])
        for part in ("weight", "bias"):
            values = t.get("heads." + layer + "." + part)
            if values is None:
                failures.append(f"heads.{layer}.{part}: missing (the published layer has one)")
                continue
            values = values.double().flatten()
            n = values.numel()
            if values.abs().max().item() > bound * (1 + 1e-6):
                failures.append(f"heads.{layer}.{part}: |value| up to {values.abs().max().item():.6g}, "
                                f"beyond nn.Linear's initial bound 1/sqrt({weight.shape[1]}) = {bound:.6g}")
            if n >= 100:
                # U(-b, b): sd b / sqrt(3); the sample sd's relative error is about 0.45 / sqrt(n).
                sd_error = abs(values.std().item() / (bound / math.sqrt(3)) - 1)
                mean_error = abs(values.mean().item()) / (bound / math.sqrt(3) / math.sqrt(n))
                worst = max(worst, sd_error / (0.45 / math.sqrt(n)))
                if sd_error > 6 * 0.45 / math.sqrt(n) or mean_error > 6:
                    failures.append(f"heads.{layer}.{part}: sd {values.std().item():.6g}, mean "
                                    f"{values.mean().item():.3g}; nn.Linear's initial U(+-{bound:.6g}) has sd "
                                    f"{bound / math.sqrt(3):.6g}, mean 0")
    print(f"initial heads: within nn.Linear's U(+-1/sqrt(fan_in)) (largest sd deviation {worst:.2f} standard errors)")


def protein_of(t):
    """[B, T] protein index of each position: the packed layout's segments, else the row."""
    real = t["batch.residue_mask"].bool()
    if "batch.segments" in t:
        return t["batch.segments"]
    return torch.arange(real.shape[0]).view(-1, 1).expand_as(real)


def relative_positions(t):
    """(rank + 0.5) / length of each real residue within its protein, in the order of the real positions."""
    real = t["batch.residue_mask"].bool()
    proteins = protein_of(t)[real]
    positions = torch.empty(proteins.shape[0], dtype=torch.float64)
    for protein in proteins.unique():
        where = (proteins == protein).nonzero().flatten()  # row-major order: the residues in sequence order
        positions[where] = (torch.arange(where.numel(), dtype=torch.float64) + 0.5) / where.numel()
    return positions


def check_masking(t, args, failures):
    ids, labels = t["batch.ids"], t["batch.mlm_labels"]
    real = t["batch.residue_mask"].bool()
    masked = labels != -100
    n, k = int(real.sum()), int(masked.sum())

    outside = int((masked & ~real).sum())
    if outside:
        failures.append(f"masking: {outside} masked positions are not real residues (BOS, EOS or pad)")

    if k:
        mask_id = args.mask_id if args.mask_id is not None else int(ids[masked].mode().values)
        as_mask = int((ids[masked] == mask_id).sum())
        kept = int((ids[masked] == labels[masked]).sum())
        replaced = k - as_mask - kept
        stray = int(((ids == mask_id) & real & ~masked).sum())
        print(f"masked residues: {as_mask} <mask> (id {mask_id}), {replaced} random, {kept} unchanged of {k}; "
              f"published {args.mask_token_fraction:g} / {args.random_token_fraction:g} / "
              f"{1 - args.mask_token_fraction - args.random_token_fraction:g}")
        if stray:
            failures.append(f"masking: id {mask_id} (<mask>) at {stray} residues with no MLM label")
        if binomial_two_sided(as_mask, k, args.mask_token_fraction) < args.alpha:
            failures.append(f"masking: {as_mask} of {k} masked residues are <mask>, published fraction "
                            f"{args.mask_token_fraction:g}")
        # A random replacement that draws the original residue counts as unchanged (1 in 20 of them at most).
        if binomial_two_sided(replaced, k, args.random_token_fraction) < args.alpha:
            failures.append(f"masking: {replaced} of {k} masked residues are random residues, published fraction "
                            f"{args.random_token_fraction:g}")

    p_exact = binomial_two_sided(k, n, args.mask_ratio)
    low, high = binomial_acceptance(n, args.mask_ratio, args.alpha)
    print(f"masking rate: {k} of {n} real residues ({k / max(n, 1):.4f}); Bernoulli({args.mask_ratio:g}): "
          f"two-sided p = {p_exact:.3g}, accepted {low}-{high} ({low / max(n, 1):.3f}-{high / max(n, 1):.3f}) "
          f"at alpha {args.alpha:g}")
    if p_exact < args.alpha:
        failures.append(f"masking rate: {k} of {n} real residues masked, p = {p_exact:.3g} under the published "
                        f"Bernoulli({args.mask_ratio:g})")

    # Masks drawn here with the published rule (every real residue independently, probability mask_ratio) on the
    # same residues: the dumped masks' count and mean relative position against those of the drawn ones.
    if n == 0:
        return
    where = relative_positions(t)
    dumped_position = where[masked[real]].mean().item() if k else float("nan")
    generator = torch.Generator().manual_seed(args.seed)
    counts, position_means = [], []
    chunk = max(1, min(args.draws, 10_000_000 // max(n, 1)))
    done = 0
    while done < args.draws:
        m = min(chunk, args.draws - done)
        drawn = torch.rand((m, n), generator=generator, dtype=torch.float64) < args.mask_ratio
        c = drawn.sum(dim=1)
        counts.append(c)
        position_means.append((drawn.double() @ where) / c.clamp(min=1))
        done += m
    counts, position_means = torch.cat(counts).double(), torch.cat(position_means)
    drawn_with_masks = position_means[counts > 0]

    def empirical_two_sided(samples, value):
        centre = samples.mean()
        return ((samples - centre).abs() >= abs(value - centre) - 1e-12).double().mean().item()

    p_count = empirical_two_sided(counts, float(k))
    p_position = empirical_two_sided(drawn_with_masks, dumped_position) if k else 1.0
    print(f"against {args.draws} masks drawn here: count {k} vs {counts.mean().item():.1f} +- "
          f"{counts.std().item():.1f} (p = {p_count:.3g}); mean relative position {dumped_position:.4f} vs "
          f"{drawn_with_masks.mean().item():.4f} +- {drawn_with_masks.std().item():.4f} (p = {p_position:.3g})")
    resolution = 1.0 / args.draws
    for what, p in (("count", p_count), ("mean relative position", p_position)):
        if p < max(args.alpha, resolution):
            failures.append(f"masks: the dumped {what} is outside the masks drawn with the published rule "
                            f"(p = {p:.3g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", help="the file of `sapling train RECIPE --inspect-batch`")
    ap.add_argument("--weights", default="1,0.5,0.5", help="MLM, structure-token, contrastive weights")
    ap.add_argument("--ratio", type=float, default=0.8, help="selection ratio (1 = no selection)")
    ap.add_argument("--mask-ratio", type=float, default=0.15,
                    help="the published masking probability of a real residue (also the MLM constant's ratio)")
    ap.add_argument("--mask-token-fraction", type=float, default=1.0,
                    help="share of masked residues replaced by <mask> (published 1: no 80/10/10)")
    ap.add_argument("--random-token-fraction", type=float, default=0.0,
                    help="share of masked residues replaced by a random residue (published 0)")
    ap.add_argument("--mask-id", type=int, default=None, help="the <mask> id (default: the commonest masked id)")
    ap.add_argument("--initial-temperature", type=float, default=0.07, help="published: t starts at log(1/0.07)")
    ap.add_argument("--projection-dim", type=int, default=0, help="0 = the published min(H, pGNN width)")
    ap.add_argument("--structure-classes", type=int, default=26,
                    help="structure-token classes (published Foldseek 26; 0 = not checked)")
    ap.add_argument("--alpha", type=float, default=1e-3, help="significance level of the masking tests")
    ap.add_argument("--draws", type=int, default=20000, help="masks drawn here for the comparison")
    ap.add_argument("--seed", type=int, default=0, help="seed of the masks drawn here")
    ap.add_argument("--batch-size", type=int, default=8, help="the published constant's proteins per micro-batch")
    ap.add_argument("--mean-length", type=float, default=240.50554219467827)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()
    t = read_safetensors(args.dump)
    w_mlm, w_struct, w_contr = (float(x) for x in args.weights.split(","))
    B, L = args.batch_size, args.mean_length

    ours = per_residue_terms(t, "model", "heads.")
    reference = per_residue_terms(t, "reference", "reference_heads.") if "reference.logits" in t else None
    worst = {"per-residue loss": 0.0, "reference loss": 0.0, "term": 0.0}
    mismatched_selection = []
    values = {"mlm": ours["mlm"].sum() / (L * args.mask_ratio * B)}
    for name in ("structure_token", "contrastive.seq_to_struct", "contrastive.struct_to_seq"):
        loss = ours[name]
        theirs = t["terms." + name + ".loss"].double()
        if theirs.shape != loss.shape:
            sys.exit(f"{name}: sapling scored {theirs.shape[0]} residues, the published rule {loss.shape[0]}")
        worst["per-residue loss"] = max(worst["per-residue loss"], (theirs - loss).abs().max().item())
        excess = loss
        if reference is not None:
            worst["reference loss"] = max(worst["reference loss"], (
                t["terms." + name + ".reference_loss"].double() - reference[name]).abs().max().item())
            excess = loss - reference[name]
        kept = top_k(excess, args.ratio)
        published_keep = torch.zeros(loss.shape[0], dtype=torch.bool)
        published_keep[kept] = True
        if not torch.equal(published_keep, t["terms." + name + ".keep"].bool()):
            mismatched_selection.append(name)
        values[name] = loss[kept].sum() / (L * B * args.ratio)
    worst["per-residue loss"] = max(worst["per-residue loss"],
                                    (t["terms.mlm.loss"].double() - ours["mlm"]).abs().max().item())
    for name, value in values.items():
        worst["term"] = max(worst["term"], abs(t["terms." + name + ".value"].item() - value.item()))
    total = (w_mlm * values["mlm"] + w_struct * values["structure_token"] +
             w_contr * (values["contrastive.seq_to_struct"] + values["contrastive.struct_to_seq"]) / 2)
    total_diff = abs(t["total"].item() - total.item())

    print(f"published loss, recomputed in PyTorch {torch.__version__}: B = {B}, "
          f"{int(t['batch.residue_mask'].sum())} residues, {int((t['batch.mlm_labels'] != -100).sum())} masked")
    for name, value in values.items():
        kept = int(t["terms." + name + ".keep"].sum()) if name != "mlm" else int(ours["mlm"].shape[0])
        print(f"  {name:28s} published {value.item():.8f}  sapling {t['terms.' + name + '.value'].item():.8f}"
              f"  ({kept} residues)")
    print(f"  {'total':28s} published {total.item():.8f}  sapling {t['total'].item():.8f}")
    for what, diff in worst.items():
        print(f"max |difference|, {what}: {diff:.3g}")
    print(f"max |difference|, total: {total_diff:.3g} (tolerance {args.tolerance:g})")
    print("selected residues: " + ("identical" if not mismatched_selection else "DIFFER in " + ", ".join(mismatched_selection)))

    failures = []
    check_initial_heads(t, args, failures)
    check_masking(t, args, failures)
    for failure in failures:
        print("FAILED: " + failure)
    print("initial state and masks: " + ("as published" if not failures else f"{len(failures)} check(s) failed"))

    failed = (mismatched_selection or failures or total_diff > args.tolerance or
              any(d > args.tolerance for d in worst.values()))
    if reference is None:
        print("note: no reference model in the dump; selection by the model's own loss")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
