"""transformers loads sapling's ESM2 folders cleanly, tokenizes as sapling does and computes what sapling computes."""
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, EsmTokenizer

from interop_helpers import LOAD_PROBLEM, scaled_diff, transformers_log, upper_residues

TOL = 1e-5  # float32 on both sides, different kernels: max |diff| / max |value|


@pytest.fixture(scope="module", params=["final", "best"])
def folder(request, out_dir):
    return out_dir / "esm2_run" / request.param


@pytest.fixture(scope="module")
def model(esm2_final):
    # eager attention: predict_contacts needs the attention maps, which sdpa does not return.
    return AutoModelForMaskedLM.from_pretrained(esm2_final, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def tokenizer(esm2_final):
    return AutoTokenizer.from_pretrained(esm2_final)


@pytest.fixture(scope="module")
def embeddings(out_dir):
    return load_file(out_dir / "embed" / "esm2.safetensors")


def test_masked_lm_loads_without_key_problems(folder):
    with transformers_log() as log:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    print(f"{folder.name}: {type(model).__name__}, {type(tokenizer).__name__}, loading info {info}")
    assert isinstance(tokenizer, EsmTokenizer)
    assert type(model).__name__ == "EsmForMaskedLM"
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info[kind], f"{folder}: {kind} {sorted(info[kind])}"
    problems = [m for m in log if LOAD_PROBLEM.search(m)]
    assert not problems, f"transformers warned while loading {folder}:\n" + "\n".join(problems)


def test_base_model_loads_with_only_the_lm_head_left_over(folder):
    # EsmModel is the encoder without the MaskedLM head: the head's tensors are unexpected by design (as with the
    # released facebook/esm2 checkpoints), and the pooler sapling does not train is left out (add_pooling_layer).
    model, info = AutoModel.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)
    print(f"{folder.name}: {type(model).__name__}, loading info {info}")
    assert type(model).__name__ == "EsmModel"
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["error_msgs"], info
    assert all(k.startswith("lm_head.") for k in info["unexpected_keys"]), sorted(info["unexpected_keys"])


def test_vocab_txt_is_the_tokenizers_vocabulary(esm2_final, tokenizer):
    vocab = (esm2_final / "vocab.txt").read_text().splitlines()
    assert tokenizer.get_vocab() == {token: i for i, token in enumerate(vocab)}
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id,
            tokenizer.mask_token_id) == (0, 1, 2, 3, 32)


def sapling_ids_from_layer0(per_tok0, word_embeddings, mask_id):
    """sapling's residue ids, read back from its layer-0 output: each row is the token's embedding row times the
    token-dropout scale, or zero for <mask> (token dropout zeroes it)."""
    ids = []
    weight = torch.nn.functional.normalize(word_embeddings, dim=-1)
    for row in per_tok0:
        if row.norm() < 1e-12:
            ids.append(mask_id)
        else:
            ids.append(int((weight @ torch.nn.functional.normalize(row, dim=0)).argmax()))
    return ids


def test_token_ids_equal_sapling(fasta_records, tokenizer, model, embeddings):
    weight = model.esm.embeddings.word_embeddings.weight.detach()
    for label, sequence in fasta_records.items():
        sapling = sapling_ids_from_layer0(embeddings[f"{label}/per_tok@0"], weight, tokenizer.mask_token_id)
        # sapling's FASTA reader upper-cases residues; EsmTokenizer does not (a run of lower-case letters is ONE
        # <unk>), so the equal ids are those of the upper-cased text: see test_lower_case_is_not_upper_cased.
        hf = tokenizer(upper_residues(sequence))["input_ids"]
        assert hf[0] == tokenizer.cls_token_id and hf[-1] == tokenizer.eos_token_id
        assert hf[1:-1] == sapling, f"{label}: transformers {hf[1:-1]}\nsapling {sapling}"


def test_lower_case_is_not_upper_cased(fasta_records, tokenizer):
    # Documents the one place the two differ: sapling embeds "mkt..." as MKT..., EsmTokenizer gives one <unk>.
    ids = tokenizer(fasta_records["lower"])["input_ids"]
    assert ids == [tokenizer.cls_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id], ids


def test_embed_outputs_equal_transformers(fasta_records, tokenizer, model, embeddings):
    last = model.config.num_hidden_layers
    worst = {}
    for label, sequence in fasta_records.items():
        inputs = tokenizer(upper_residues(sequence), return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
            contacts = model.esm.predict_contacts(inputs["input_ids"], inputs["attention_mask"])[0]
        hidden = out.hidden_states  # [0]: embeddings (token dropout applied); [-1]: after emb_layer_norm_after
        pairs = {
            "per_tok@0": (embeddings[f"{label}/per_tok@0"], hidden[0][0, 1:-1]),
            f"per_tok@{last}": (embeddings[f"{label}/per_tok@{last}"], hidden[-1][0, 1:-1]),
            f"mean@{last}": (embeddings[f"{label}/mean@{last}"], hidden[-1][0, 1:-1].mean(0)),
            f"bos@{last}": (embeddings[f"{label}/bos@{last}"], hidden[-1][0, 0]),
            "contacts": (embeddings[f"{label}/contacts"], contacts),
        }
        for name, (ours, theirs) in pairs.items():
            scaled, diff = scaled_diff(ours, theirs)
            print(f"{label}/{name}: max |diff| {diff:.3g}, scaled {scaled:.3g}")
            worst[name] = max(worst.get(name, 0.0), scaled)
            assert scaled < TOL, f"{label}/{name}: sapling embed vs transformers, scaled max diff {scaled:.3g}"
    print("worst scaled differences:", {k: f"{v:.3g}" for k, v in worst.items()})


def test_npy_output_equals_safetensors_output(out_dir, fasta_records, embeddings):
    np = pytest.importorskip("numpy")
    last = max(int(m.group(1)) for k in embeddings for m in [re.search(r"@(\d+)$", k)] if m)
    for label in fasta_records:
        for kind in ("per_tok", "mean"):
            array = np.load(out_dir / "embed" / "esm2_npy" / f"{label}.{kind}.npy")
            assert array.dtype == np.float32
            # Same model, same fp32 path, another sapling process: equal up to the wheel's MKL run-to-run noise,
            # bounded as the embed auto test bounds it (1e-4; docs/reliability.md saw 2.6e-5 in a fresh root).
            scaled, diff = scaled_diff(torch.from_numpy(array), embeddings[f"{label}/{kind}@{last}"])
            assert scaled < 1e-4, f"{label}.{kind}.npy vs safetensors: scaled {scaled:.3g}"


def test_training_batch_logits_equal_transformers(out_dir, model):
    # --inspect-batch through final/: a padded batch with <mask> tokens, so padding and token dropout are covered.
    batch = load_file(out_dir / "esm2_batch.safetensors")
    ids, mask = batch["batch.ids"], batch["batch.mask"].bool()
    assert (ids[~mask] == model.config.pad_token_id).all(), "padding positions do not hold <pad>"
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
    for name, ours, theirs in (("logits", batch["model.logits"], out.logits),
                               ("last_hidden", batch["model.last_hidden"], out.hidden_states[-1])):
        scaled, diff = scaled_diff(ours[mask], theirs[mask])
        print(f"batch {name} {tuple(ours.shape)}: max |diff| {diff:.3g}, scaled {scaled:.3g}")
        assert scaled < TOL, f"inspect-batch {name} vs transformers: scaled {scaled:.3g}"
