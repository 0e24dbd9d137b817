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

Then compares with sapling's values and exits non-zero when any differs by more than the tolerance.
"""
import argparse
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
    struct = t["batch.structure_tokens"].view(-1)
    scored = struct != -100
    out["structure_token"] = cross_entropy_rows(
        structure_logits(h, t, heads_prefix + "structure_token.").view(B * T, -1)[scored], struct[scored])
    real = t["batch.residue_mask"].view(-1).bool()
    g = t["batch.pgnn_embeddings"].double().view(B * T, -1)[real]
    s2g, g2s = contrastive_rows(h.view(B * T, -1)[real], g, t, heads_prefix + "contrastive.")
    out["contrastive.seq_to_struct"], out["contrastive.struct_to_seq"] = s2g, g2s
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", help="the file of `sapling train RECIPE --inspect-batch`")
    ap.add_argument("--weights", default="1,0.5,0.5", help="MLM, structure-token, contrastive weights")
    ap.add_argument("--ratio", type=float, default=0.8, help="selection ratio (1 = no selection)")
    ap.add_argument("--mask-ratio", type=float, default=0.15)
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
    failed = mismatched_selection or total_diff > args.tolerance or any(d > args.tolerance for d in worst.values())
    if reference is None:
        print("note: no reference model in the dump; selection by the model's own loss")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
