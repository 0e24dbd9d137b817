"""The tokenizer.json of sapling's AMPLIFY folders loads in tokenizers/transformers and gives sapling's token ids."""
import json

import pytest
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from interop_helpers import sapling_encode, upper_residues

# AMPLIFY's released vocabulary (chandar-lab/AMPLIFY), as plugins/amplify/src/amplify_model.cpp lists it.
VOCAB = ["<pad>", "<unk>", "<mask>", "<bos>", "<eos>", "|", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P",
         "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "B"]
UPPER = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "ACDEFGHIKLMNPQRSTVWY", "BLAGV|LAG"]
RARE = ["GSHMXBUZOKLLV", "XXXX", "UZO"]
MASKED = ["MKT<mask>AYIA<mask><mask>KQ", "<mask>", "<MASK>MK"]
LOWER = ["mktayiakqr", "MKtaYI", "b|x", "MK<mask"]  # "<mask" unclosed: "<" is <unk>, "mask" residues


@pytest.fixture(scope="module")
def folder(amplify_final):
    return amplify_final


@pytest.fixture(scope="module")
def readers(folder):
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    return raw, fast


def sapling_ids(text):
    return sapling_encode(text, VOCAB, bos="<bos>", eos="<eos>")


def test_vocabulary_and_special_ids(folder, readers):
    raw, _ = readers
    assert raw.get_vocab(with_added_tokens=True) == {t: i for i, t in enumerate(VOCAB)}
    config = json.loads((folder / "config.json").read_text())
    # trust_remote_code=False: the tokenizer needs no code (see the remote-code prompt test below).
    auto = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    print(f"AutoTokenizer: {type(auto).__name__}")
    assert isinstance(auto, PreTrainedTokenizerFast)
    for role in ("bos", "eos", "pad", "mask", "unk"):
        assert getattr(auto, f"{role}_token_id") == config[f"{role}_token_id"] == VOCAB.index(f"<{role}>"), role
    assert config["vocab_size"] == len(VOCAB)


@pytest.mark.parametrize("text", UPPER + RARE + MASKED, ids=lambda t: repr(t))
def test_ids_equal_sapling(readers, text):
    raw, fast = readers
    expected = sapling_ids(text)
    assert raw.encode(text).ids == expected, f"tokenizers {raw.encode(text).tokens}, sapling {expected}"
    assert fast(text)["input_ids"] == expected


@pytest.mark.parametrize("text", LOWER, ids=lambda t: repr(t))
def test_lower_case_ids_equal_sapling_after_upper_casing(readers, text):
    # sapling upper-cases residues (its FASTA reader and Tokenizer::encode); the upper-cased text gives its ids.
    raw, _ = readers
    assert raw.encode(upper_residues(text)).ids == sapling_ids(text)


@pytest.mark.parametrize("text", LOWER, ids=lambda t: repr(t))
def test_lower_case_ids_equal_sapling(readers, text):
    # sapling upper-cases residues; AMPLIFY's tokenizer.json does the same with its normalizer.
    raw, _ = readers
    assert raw.encode(text).ids == sapling_ids(text), f"tokenizers {raw.encode(text).tokens}"


def test_real_sequences_equal_sapling_training_ids(out_dir, readers):
    # The first AMPLIFY training micro-batch (--inspect-batch): its unmasked ids must be tokenizer.json's encoding
    # of one of the dataset's sequences (crops at 96 residues are longer than the sample's chains).
    raw, _ = readers
    batch = load_file(out_dir / "amplify_batch.safetensors")
    ids = batch["batch.ids"].clone()
    labels = batch["batch.mlm_labels"]
    ids[labels >= 0] = labels[labels >= 0]
    rows = [row[mask.bool()].tolist() for row, mask in zip(ids, batch["batch.mask"])]
    shards = sorted((out_dir / "dataset").glob("shard-*.safetensors"))
    encoded = set()
    for shard in shards:
        data = load_file(shard)
        text, offsets = bytes(data["sequence"].tolist()).decode("ascii"), data["offsets"].tolist()
        encoded |= {tuple(raw.encode(text[a:b]).ids) for a, b in zip(offsets, offsets[1:])}
    print(f"{len(rows)} batch rows against {len(encoded)} encoded dataset sequences")
    for row in rows:
        assert tuple(row) in encoded, f"sapling's ids {row} are no dataset sequence's tokenizer.json encoding"


def test_decode_gives_the_sequence(folder, readers):
    raw, fast = readers
    if json.loads((folder / "tokenizer.json").read_text()).get("decoder") is None:
        pytest.skip("tokenizer.json has no decoder yet (sapling's Fuse decoder is not in this build): decoding "
                    "joins the residues with spaces")
    auto = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    for text in UPPER:
        ids = raw.encode(text).ids
        assert raw.decode(ids, skip_special_tokens=True) == text
        assert fast.decode(ids, skip_special_tokens=True) == text
        assert auto.decode(ids, skip_special_tokens=True) == text


def test_auto_tokenizer_loads_without_a_remote_code_prompt(folder):
    # config.json has an auto_map only when the folder carries the modelling code: otherwise AutoTokenizer would
    # ask whether to run remote code (and wait for an answer on a terminal) that is not there.
    # The model card says the tokenizer loads as it is: AutoTokenizer.from_pretrained(folder), nothing else.
    import subprocess
    import sys
    code = f"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained({str(folder)!r})"
    proc = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "custom code" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr).strip()
