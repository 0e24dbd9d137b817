"""The tokenizer.json of sapling's ESM2 folders gives EsmTokenizer's ids for every string (tokenizers, transformers)."""
import random

import pytest
from tokenizers import Tokenizer
from transformers import EsmTokenizer, PreTrainedTokenizerFast

CASES = [
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ",  # normal
    "ACDEFGHIKLMNPQRSTVWY",
    "XBUZO", "GSHMXBUZOKLLV",  # rare letters
    "MKT<mask>AYIA<mask><mask>KQ", "<mask>", "MK<mask",  # <mask> inside, and an unclosed one
    "mkt", "qr", "q r", "MKqrTA", "MK q r TA", "Mk",  # lower case: a run of unknowns is ONE <unk>, "q r" two
    " MKT", "MKT ", "MK T", "M\tK\nT", "   ", "\n",  # whitespace
    "<null_1>", "A<null_1>B", "<cls>MK<eos>", "<pad><unk>",  # the other multi-character tokens
    ".-", "A.B-C", "1234", "MK*", "<>", "<<mask>>", "é",  # punctuation in the vocabulary, and outside it
    "",  # empty
]


@pytest.fixture(scope="module")
def folder(esm2_final):
    if not (esm2_final / "tokenizer.json").exists():
        pytest.skip(f"{esm2_final} has no tokenizer.json yet (sapling does not write one for ESM2 in this build)")
    return esm2_final


@pytest.fixture(scope="module")
def tokenizers(folder):
    """(name, encode) for EsmTokenizer and the two readers of tokenizer.json; encode(text) -> ids with specials."""
    slow = EsmTokenizer(vocab_file=str(folder / "vocab.txt"))
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    return slow, raw, fast


def random_strings(count=200, seed=29):
    # Upper/lower letters, vocabulary punctuation, whitespace, other characters and pieces of special tokens.
    pieces = list("LAGVSERTIDPKQNFYMHWCXBUZO") + list("acqrxz") + list(".-") + [" ", "  ", "\t", "\n"] + \
        list("1*#<>é") + ["<mask>", "<null_1>", "<cls>", "<eos>", "<pad>", "<unk>", "<mas", "k>", "null_1>"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 24))) for _ in range(count)]


def test_vocabulary_is_vocab_txt(folder, tokenizers):
    slow, raw, fast = tokenizers
    vocab = (folder / "vocab.txt").read_text().splitlines()
    assert raw.get_vocab(with_added_tokens=True) == {t: i for i, t in enumerate(vocab)}
    assert fast.get_vocab() == slow.get_vocab()


@pytest.mark.parametrize("text", CASES, ids=[repr(c) for c in CASES])
def test_listed_strings(tokenizers, text):
    slow, raw, fast = tokenizers
    expected = slow(text)["input_ids"]
    assert raw.encode(text).ids == expected, f"tokenizers: {raw.encode(text).tokens} vs EsmTokenizer " \
                                             f"{slow.convert_ids_to_tokens(expected)}"
    assert fast(text)["input_ids"] == expected
    assert fast(text, add_special_tokens=False)["input_ids"] == slow(text, add_special_tokens=False)["input_ids"]


def test_random_strings(tokenizers):
    slow, raw, fast = tokenizers
    strings = random_strings()
    bad = [(s, slow(s)["input_ids"], raw.encode(s).ids) for s in strings if raw.encode(s).ids != slow(s)["input_ids"]]
    bad += [(s, slow(s)["input_ids"], fast(s)["input_ids"]) for s in strings
            if fast(s)["input_ids"] != slow(s)["input_ids"]]
    print(f"{len(strings)} random strings, {len(bad)} differing")
    assert not bad, "EsmTokenizer vs tokenizer.json (string, EsmTokenizer ids, tokenizer.json ids):\n" + \
        "\n".join(map(repr, bad[:10]))


def test_batch_and_pair_encoding(tokenizers):
    slow, raw, fast = tokenizers
    texts = ["MKT", "A<mask>C", "qr q"]
    assert [e.ids for e in raw.encode_batch(texts)] == slow(texts)["input_ids"]
    # A pair: "<cls> A <eos> B <eos>", as EsmTokenizer builds it.
    assert fast("MK", "TA")["input_ids"] == slow("MK", "TA")["input_ids"]


def test_decoding_matches_esm_tokenizer(tokenizers):
    slow, raw, fast = tokenizers
    for text in ("MKTAYIAK", "MK<mask>TA", "XBUZO"):
        ids = slow(text)["input_ids"]
        assert fast.decode(ids, skip_special_tokens=True) == slow.decode(ids, skip_special_tokens=True), text
        assert fast.decode(ids) == slow.decode(ids), text
