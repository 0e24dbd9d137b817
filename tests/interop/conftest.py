"""Shared fixtures of the interop tests: artifact paths, running build/sapling, one thread."""
import os
import subprocess
from pathlib import Path

# One thread: the suite runs on small shared machines, and the tiny models gain nothing from more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SAPLING_NUM_THREADS", "1")
# The tests never reach the network: every model and tokenizer is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]


def _env_dir(name, what):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run bash tests/interop/make_artifacts.sh BUILD OUT and set "
                    f"{name} to {what} (ctest does both)")
    path = Path(value)
    if not path.is_absolute():
        path = REPO / path
    if not path.is_dir():
        pytest.skip(f"{name}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def repo():
    """The repository root (the tests run sapling from there)."""
    return REPO


@pytest.fixture(scope="session")
def out_dir():
    """OUT_DIR of make_artifacts.sh (SAPLING_INTEROP_DIR)."""
    out = _env_dir("SAPLING_INTEROP_DIR", "its OUT_DIR")
    if not (out / "esm2_run" / "final").is_dir():
        pytest.skip(f"{out} has no esm2_run/final: run bash tests/interop/make_artifacts.sh BUILD {out}")
    return out


@pytest.fixture(scope="session")
def build_dir():
    """The build folder holding the sapling executable (SAPLING_BUILD_DIR)."""
    build = _env_dir("SAPLING_BUILD_DIR", "the build folder")
    if not (build / "sapling").is_file():
        pytest.skip(f"{build}/sapling does not exist")
    return build


@pytest.fixture(scope="session")
def run_sapling(build_dir):
    """run_sapling(*args, env=None, check=True): runs build/sapling from the repository root, output captured."""

    def run(*args, env=None, check=True):
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run([str(build_dir / "sapling"), *map(str, args)], cwd=REPO, env=full_env,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            pytest.fail(f"sapling {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def esm2_final(out_dir):
    return out_dir / "esm2_run" / "final"


@pytest.fixture(scope="session")
def amplify_final(out_dir):
    return out_dir / "amplify_run" / "final"


@pytest.fixture(scope="session")
def fasta_records(out_dir):
    """The embedded sequences of make_artifacts.sh as {label: sequence as written in the FASTA}."""
    records, label = {}, None
    for line in (out_dir / "embed" / "seqs.fasta").read_text().splitlines():
        if line.startswith(">"):
            label = line[1:].split()[0]
            records[label] = ""
        elif line.strip():
            records[label] += line.strip()
    return records
