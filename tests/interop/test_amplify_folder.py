"""sapling's AMPLIFY folders have the release's layout: config.json (auto_map, dtype), weights, no contact head."""
import json

import pytest
import torch
from safetensors import safe_open

# The fields of the release's AMPLIFYConfig (chandar-lab/AMPLIFY_120M config.json).
RELEASE_FIELDS = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "dropout_prob",
                  "embedding_init_range", "decoder_init_range", "rms_norm", "norm_eps", "hidden_act",
                  "layer_norm_after_embedding", "layer_norm_before_last_layer", "vocab_size", "ffn_bias", "att_bias",
                  "pad_token_id", "max_length"}
MODELLING_FILES = ("amplify.py", "rmsnorm.py", "rotary.py")


@pytest.fixture(scope="module", params=["final", "best"])
def folder(request, out_dir):
    return out_dir / "amplify_run" / request.param


def read_config(folder):
    return json.loads((folder / "config.json").read_text())


def needs_new_layout(config):
    if "torch_dtype" not in config:
        pytest.skip("config.json has no torch_dtype: sapling's AMPLIFY folder change (auto_map, dtype, contact head "
                    "in contact_head.safetensors) is not in this build")


def expected_shapes(config):
    """The release's tensor names and shapes for a config (its SwiGLU width: 2/3 of intermediate_size, rounded
    up to a multiple of 8, as amplify.py computes it)."""
    d, v = config["hidden_size"], config["vocab_size"]
    ffn = int(2 * config["intermediate_size"] / 3)
    ffn = 8 * ((ffn + 7) // 8)
    shapes = {"encoder.weight": [v, d], "decoder.weight": [v, d], "decoder.bias": [v]}
    if config["layer_norm_before_last_layer"]:
        shapes["layer_norm_2.weight"] = [d]
    if config["layer_norm_after_embedding"]:
        shapes["layer_norm_1.weight"] = [d]
    for i in range(config["num_hidden_layers"]):
        p = f"transformer_encoder.{i}."
        for name in ("q", "k", "v", "wo"):
            shapes[p + name + ".weight"] = [d, d]
            if config["att_bias"]:
                shapes[p + name + ".bias"] = [d]
        shapes[p + "ffn.w12.weight"] = [2 * ffn, d]
        shapes[p + "ffn.w3.weight"] = [d, ffn]
        if config["ffn_bias"]:
            shapes[p + "ffn.w12.bias"] = [2 * ffn]
            shapes[p + "ffn.w3.bias"] = [d]
        shapes[p + "attention_norm.weight"] = [d]
        shapes[p + "ffn_norm.weight"] = [d]
    return shapes


def test_config_has_the_release_fields(folder):
    config = read_config(folder)
    assert config["model_type"] == "AMPLIFY"
    missing = RELEASE_FIELDS - config.keys()
    assert not missing, f"config.json lacks the release's fields {sorted(missing)}"


def test_weights_have_the_release_names_and_shapes(folder):
    config = read_config(folder)
    with safe_open(folder / "model.safetensors", "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys() if not k.startswith("contact_head.")}
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert shapes == expected_shapes(config)
    assert dtypes == {"F32"}, dtypes


def test_config_declares_auto_map_and_dtype(folder):
    config = read_config(folder)
    needs_new_layout(config)
    print(f"{folder.name}: auto_map {config.get('auto_map')}, dtype {config.get('dtype')}, "
          f"torch_dtype {config.get('torch_dtype')}, architectures {config.get('architectures')}")
    if (folder / "amplify.py").exists():
        assert {"AutoConfig", "AutoModel", "AutoModelForMaskedLM"} <= config["auto_map"].keys()
        assert all(v.startswith("amplify.") for v in config["auto_map"].values()), config["auto_map"]
    else:
        # No modelling code to point at (the bundled base has none): no auto_map, and the card says what to add.
        assert "auto_map" not in config
        card = (folder / "README.md").read_text()
        assert "amplify.AMPLIFYConfig" in card and "rmsnorm.py" in card, card
    with safe_open(folder / "model.safetensors", "pt") as f:
        stored = f.get_tensor("encoder.weight").dtype
    assert config["dtype"] == config["torch_dtype"] == str(stored).removeprefix("torch."), (config, stored)


def test_contact_head_is_not_in_model_safetensors(folder):
    config = read_config(folder)
    needs_new_layout(config)
    with safe_open(folder / "model.safetensors", "pt") as f:
        contact = [k for k in f.keys() if k.startswith("contact_head.")]
    assert not contact, f"model.safetensors holds {contact}: the release's AMPLIFY class would call them unexpected"
    extra = folder / "contact_head.safetensors"
    if extra.exists():
        with safe_open(extra, "pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        width = config["num_hidden_layers"] * config["num_attention_heads"]
        assert shapes == {"contact_head.regression.weight": [1, width], "contact_head.regression.bias": [1]}, shapes
    print(f"{folder.name}: contact_head.safetensors {'present' if extra.exists() else 'absent'}")


def test_loads_with_trust_remote_code(folder, out_dir):
    if not (folder / "amplify.py").exists():
        pytest.skip(f"{folder} has no modelling code: AutoModelForMaskedLM.from_pretrained(trust_remote_code=True) "
                    f"needs {', '.join(MODELLING_FILES)} from chandar-lab/AMPLIFY_120M beside config.json (not "
                    "available offline)")
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    model, info = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
    print(f"{folder.name}: {type(model).__name__}, loading info {info}")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    if folder.name != "final":
        return
    # The release's forward: hidden states are the block outputs, as sapling embed returns them.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sequence = "ACDEFGHIKLMNPQRSTVWY"
    with torch.no_grad():
        out = model.eval()(tokenizer(sequence, return_tensors="pt")["input_ids"], output_hidden_states=True)
    ours = load_file(out_dir / "embed" / "amplify.safetensors")["allaa/per_tok"]
    theirs = out.hidden_states[-1][0, 1:-1]
    scaled = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    print(f"release AMPLIFY vs sapling embed: scaled {scaled:.3g}")
    assert scaled < 1e-5
