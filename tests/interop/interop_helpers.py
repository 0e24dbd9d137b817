"""Helpers of the interop tests: scaled differences, capturing transformers' log, sapling's tokenizer rules."""
import contextlib
import logging
import re

import torch


def scaled_diff(actual, expected):
    """max |actual - expected| / max |expected| (float64), and the unscaled max difference."""
    actual = torch.as_tensor(actual).double()
    expected = torch.as_tensor(expected).double()
    assert actual.shape == expected.shape, f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}"
    diff = (actual - expected).abs().max().item() if expected.numel() else 0.0
    scale = expected.abs().max().item() if expected.numel() else 0.0
    return diff / max(scale, 1e-30), diff


@contextlib.contextmanager
def transformers_log():
    """Collects what transformers logs at WARNING or above (its logger does not propagate to pytest's caplog)."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# What transformers logs when a checkpoint does not fit the model: its load report, or the older warnings.
LOAD_PROBLEM = re.compile(r"LOAD REPORT|newly initialized|not initialized|were not used|MISSING|UNEXPECTED|MISMATCH")


def sapling_encode(sequence, vocab, unk="<unk>", bos=None, eos=None):
    """sapling's Tokenizer::encode (core/sdk/src/tokenizer.cpp) in Python: a bracketed token in the vocabulary is one
    id; every other character is upper-cased and looked up alone, <unk> when absent; BOS/EOS around."""
    index = {token: i for i, token in enumerate(vocab)}
    out = [] if bos is None else [index[bos]]
    i = 0
    while i < len(sequence):
        c = sequence[i]
        if c == "<":
            close = sequence.find(">", i)
            if close >= 0 and sequence[i:close + 1] in index:
                out.append(index[sequence[i:close + 1]])
                i = close + 1
                continue
        out.append(index.get(c.upper(), index[unk]))
        i += 1
    if eos is not None:
        out.append(index[eos])
    return out


def upper_residues(sequence):
    """What sapling's FASTA reader makes of a sequence: residues upper-cased, bracketed tokens (<mask>) kept."""
    return re.sub(r"<[^<>]*>|[^<]+", lambda m: m.group(0) if m.group(0).startswith("<") else m.group(0).upper(),
                  sequence)
