"""fair-esm's ESM2 loads sapling's ESM2 weights (renamed as transformers' convert_esm.py does, inverted) strictly and
computes transformers' logits and representations."""
import json
import re

import esm
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from interop_helpers import scaled_diff

TOL = 1e-5  # float32 on both sides: max |diff| / max |value|

# HF name (inside "esm.encoder.layer.N.") -> fair-esm name (inside "layers.N."): convert_esm.py's mapping, inverted.
LAYER_NAMES = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.self.rotary_embeddings.inv_freq": "self_attn.rot_emb.inv_freq",
    "attention.output.dense": "self_attn.out_proj",
    "attention.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "LayerNorm": "final_layer_norm",
}
TOP_NAMES = {
    "esm.embeddings.word_embeddings.weight": "embed_tokens.weight",
    "esm.encoder.emb_layer_norm_after.weight": "emb_layer_norm_after.weight",
    "esm.encoder.emb_layer_norm_after.bias": "emb_layer_norm_after.bias",
    "esm.contact_head.regression.weight": "contact_head.regression.weight",
    "esm.contact_head.regression.bias": "contact_head.regression.bias",
    "lm_head.dense.weight": "lm_head.dense.weight",
    "lm_head.dense.bias": "lm_head.dense.bias",
    "lm_head.layer_norm.weight": "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias": "lm_head.layer_norm.bias",
    "lm_head.bias": "lm_head.bias",
    "lm_head.decoder.weight": "lm_head.weight",  # tied to the embeddings; sapling may leave it out
}
# In released HF ESM2 folders but read by no rotary ESM2 (convert_esm.py maps nothing to them); fair-esm has none.
UNUSED = {"esm.embeddings.position_embeddings.weight", "esm.embeddings.position_ids",
          "esm.rotary_embeddings.inv_freq"}


def fair_esm_name(hf_name):
    if hf_name in TOP_NAMES:
        return TOP_NAMES[hf_name]
    m = re.fullmatch(r"esm\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias|inv_freq)", hf_name)
    if m:
        inner = m.group(2) if m.group(3) != "inv_freq" else m.group(2) + ".inv_freq"
        suffix = "" if m.group(3) == "inv_freq" else "." + m.group(3)
        if inner in LAYER_NAMES:
            return f"layers.{m.group(1)}.{LAYER_NAMES[inner]}{suffix}"
    return None


@pytest.fixture(scope="module")
def folder(esm2_final):
    return esm2_final


@pytest.fixture(scope="module")
def fair_model(folder):
    config = json.loads((folder / "config.json").read_text())
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=config["num_hidden_layers"], embed_dim=config["hidden_size"],
                                attention_heads=config["num_attention_heads"], alphabet=alphabet,
                                token_dropout=config["token_dropout"])
    # fair-esm hard-codes the feed-forward width to 4 x embed_dim (every released ESM2); the tiny test model is not
    # 4x, so its fc1/fc2 are resized to the config's intermediate_size before the strict load.
    if config["intermediate_size"] != 4 * config["hidden_size"]:
        for layer in model.layers:
            layer.fc1 = torch.nn.Linear(config["hidden_size"], config["intermediate_size"])
            layer.fc2 = torch.nn.Linear(config["intermediate_size"], config["hidden_size"])
    hf_state = load_file(folder / "model.safetensors")
    state, unmatched = {}, []
    for name, tensor in hf_state.items():
        target = fair_esm_name(name)
        if name in UNUSED:
            print(f"not mapped (unused by a rotary ESM2): {name} {tuple(tensor.shape)}")
        elif target is None:
            unmatched.append(name)
        else:
            state[target] = tensor
    assert not unmatched, f"sapling tensors with no fair-esm counterpart: {unmatched}"
    state.setdefault("lm_head.weight", state["embed_tokens.weight"])  # tied, as in fair-esm
    result = model.load_state_dict(state, strict=False)
    print(f"fair-esm load: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    assert not result.missing_keys and not result.unexpected_keys, result
    assert model.lm_head.weight is model.embed_tokens.weight or torch.equal(model.lm_head.weight,
                                                                            model.embed_tokens.weight)
    return model.eval()


@pytest.fixture(scope="module")
def hf_model(folder):
    return AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()


def test_alphabet_ids_equal_vocab(folder):
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    vocab = (folder / "vocab.txt").read_text().splitlines()
    assert alphabet.all_toks == vocab
    config = json.loads((folder / "config.json").read_text())
    assert (alphabet.padding_idx, alphabet.mask_idx, alphabet.eos_idx) == \
        (config["pad_token_id"], config["mask_token_id"], config["eos_token_id"])
    assert alphabet.cls_idx == 0 and alphabet.prepend_bos and alphabet.append_eos


def test_every_tensor_maps_and_loads_strictly(fair_model):
    assert fair_model is not None  # the fixture asserts the mapping and the strict load


def test_inv_freq_is_the_standard_rotary(folder):
    # A stored rotary table must be the one both libraries would compute (transformers loads the stored one).
    state = load_file(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    dim = config["hidden_size"] // config["num_attention_heads"]
    expected = 1.0 / (config.get("rope_theta", 10000.0) ** (torch.arange(0, dim, 2).float() / dim))
    for name, tensor in state.items():
        if name.endswith("inv_freq"):
            scaled, _ = scaled_diff(tensor, expected)
            assert scaled < 1e-6, f"{name}: scaled {scaled:.3g} from the standard rotary frequencies"


@pytest.mark.parametrize("sequences", [["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"],
                                       ["MKT<mask>AYIAKQXBUZO", "ACDEFGHIKLMNPQRSTVWY", "GS<mask>HM"]],
                         ids=["one", "padded-batch-with-masks"])
def test_logits_and_representations_equal_transformers(fair_model, hf_model, sequences):
    alphabet = fair_model.alphabet
    _, _, tokens = alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(sequences)])
    last = fair_model.num_layers
    with torch.no_grad():
        fair = fair_model(tokens, repr_layers=[0, last], return_contacts=True)
        hf = hf_model(input_ids=tokens, attention_mask=(tokens != alphabet.padding_idx).long(),
                      output_hidden_states=True)
    real = tokens != alphabet.padding_idx
    checks = {
        "logits": (fair["logits"][real], hf.logits[real]),
        "representations[0]": (fair["representations"][0][real], hf.hidden_states[0][real]),
        f"representations[{last}]": (fair["representations"][last][real], hf.hidden_states[-1][real]),
    }
    if len(sequences) == 1:  # transformers' predict_contacts on an unpadded row
        with torch.no_grad():
            checks["contacts"] = (fair["contacts"], hf_model.esm.predict_contacts(tokens, real.long()))
    for name, (ours, theirs) in checks.items():
        scaled, diff = scaled_diff(ours, theirs)
        print(f"fair-esm vs transformers {name}: max |diff| {diff:.3g}, scaled {scaled:.3g}")
        assert scaled < TOL, f"{name}: scaled {scaled:.3g}"


def test_fair_esm_equals_sapling_on_a_training_batch(out_dir, fair_model):
    # sapling's own logits (--inspect-batch through final/, float32) on a padded batch with <mask> tokens.
    batch = load_file(out_dir / "esm2_batch.safetensors")
    ids, mask = batch["batch.ids"], batch["batch.mask"].bool()
    with torch.no_grad():
        fair = fair_model(ids, repr_layers=[fair_model.num_layers])
    for name, ours, theirs in (("logits", batch["model.logits"], fair["logits"]),
                               ("last_hidden", batch["model.last_hidden"],
                                fair["representations"][fair_model.num_layers])):
        scaled, diff = scaled_diff(ours[mask], theirs[mask])
        print(f"sapling vs fair-esm batch {name}: max |diff| {diff:.3g}, scaled {scaled:.3g}")
        assert scaled < TOL, f"{name}: scaled {scaled:.3g}"
