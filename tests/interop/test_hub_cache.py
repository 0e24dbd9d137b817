"""sapling finds a hub id (facebook/esm2_t6_8M_UR50D) in a Hugging Face cache laid out as huggingface_hub lays it."""
import hashlib
import os
import shutil

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download
from safetensors.torch import load_file

from interop_helpers import scaled_diff

REPO_ID = "facebook/esm2_t6_8M_UR50D"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex commit: refs/main names it
# The same model and fp32 path in two sapling processes: only the wheel's MKL run-to-run noise, bounded as the embed
# auto test bounds it (docs/reliability.md: 2.6e-5 scaled seen in a fresh root).
TOL = 1e-4


def make_cache(root, source):
    """huggingface_hub's layout: blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>, refs/main."""
    repo = root / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, repo / "blobs" / digest)
        os.symlink(os.path.join("..", "..", "blobs", digest), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)  # no newline, as huggingface_hub writes it
    return snapshot


@pytest.fixture(scope="module")
def source(repo):
    return repo / "tests" / "fixtures" / "esm2_tiny"


@pytest.fixture(scope="module")
def cache(tmp_path_factory, source):
    root = tmp_path_factory.mktemp("hub")
    snapshot = make_cache(root, source)
    return root, snapshot


def embed(run_sapling, model, out, fasta, env, check=True):
    return run_sapling("embed", "--model", model, "--fasta", fasta, "--out", out, "--include", "per_tok,mean",
                       "--dtype", "fp32", "--threads", "1", "--quiet", env=env, check=check)


@pytest.fixture(scope="module")
def direct(run_sapling, out_dir, source, tmp_path_factory):
    out = tmp_path_factory.mktemp("direct") / "direct.safetensors"
    embed(run_sapling, source, out, out_dir / "embed" / "seqs.fasta", env={})
    return load_file(out)


@pytest.fixture(scope="module")
def supported(run_sapling, cache, out_dir, tmp_path_factory):
    root, _ = cache
    out = tmp_path_factory.mktemp("probe") / "probe.safetensors"
    proc = embed(run_sapling, REPO_ID, out, out_dir / "embed" / "seqs.fasta",
                 env={"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"}, check=False)
    message = proc.stderr + proc.stdout
    if proc.returncode != 0 and "download" not in message and \
            ("no config.json" in message or "does not exist" in message):
        pytest.skip(f"this build of sapling does not resolve hub ids: {message.strip().splitlines()[-1]}")
    return proc


def test_huggingface_hub_sees_the_cache(cache, monkeypatch):
    root, snapshot = cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = scan_cache_dir(root)
    repos = {r.repo_id: r for r in info.repos}
    assert REPO_ID in repos, f"scan_cache_dir found {sorted(repos)}; warnings {info.warnings}"
    assert {rev.commit_hash for rev in repos[REPO_ID].revisions} == {COMMIT}
    assert "main" in next(iter(repos[REPO_ID].revisions)).refs
    path = snapshot_download(REPO_ID, cache_dir=root, local_files_only=True)
    assert os.path.realpath(path) == os.path.realpath(snapshot)


def compare(ours, direct, what):
    assert sorted(ours) == sorted(direct)
    worst = 0.0
    for name in direct:
        scaled, _ = scaled_diff(ours[name], direct[name])
        worst = max(worst, scaled)
    print(f"{what} vs the folder path: worst scaled difference {worst:.3g}")
    assert worst < TOL


def test_embed_by_hub_id_equals_the_folder(supported, cache, direct, run_sapling, out_dir, tmp_path):
    root, _ = cache
    fasta = out_dir / "embed" / "seqs.fasta"
    for model, env in ((REPO_ID, {"HF_HUB_CACHE": str(root)}),
                       (f"{REPO_ID}@{COMMIT}", {"HF_HUB_CACHE": str(root)}),  # a commit, no refs/ lookup
                       (REPO_ID, {"HF_HUB_CACHE": "", "HF_HOME": str(root.parent / "home")})):
        if "HF_HOME" in env:  # $HF_HOME/hub when HF_HUB_CACHE is not set
            home = root.parent / "home"
            if not home.exists():
                home.mkdir()
                (home / "hub").symlink_to(root, target_is_directory=True)
        out = tmp_path / f"{len(os.listdir(tmp_path))}.safetensors"
        embed(run_sapling, model, out, fasta, env={**env, "HF_HUB_OFFLINE": "1"})
        compare(load_file(out), direct, f"{model} ({', '.join(f'{k}={v}' for k, v in env.items())})")


def test_recipe_model_path_may_be_a_hub_id(supported, cache, run_sapling, out_dir, source, tmp_path):
    # --inspect-batch trains nothing: the recipe builds the model from the hub id and runs one micro-batch.
    root, _ = cache
    outputs = {}
    for name, model in (("hub", REPO_ID), ("folder", str(source))):
        out = tmp_path / f"{name}.safetensors"
        proc = run_sapling("train", "tests/interop/interop.toml", "--quiet", "--threads", "1", "--inspect-batch", out,
                           "--set", f"model.path={model}", "--set", f"data.dataset={out_dir / 'dataset'}",
                           "--set", "train.precision=fp32", env={"HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1"},
                           check=False)
        message = (proc.stderr + proc.stdout).strip()
        if proc.returncode != 0 and name == "hub" and "no config.json" in message:
            pytest.skip(f"this build's [model] path does not resolve hub ids: {message.splitlines()[-1]}")
        assert proc.returncode == 0, message
        outputs[name] = load_file(out)
    scaled, diff = scaled_diff(outputs["hub"]["model.logits"], outputs["folder"]["model.logits"])
    print(f"inspect-batch logits, hub id vs folder: max |diff| {diff:.3g}, scaled {scaled:.3g}")
    assert scaled < TOL


def test_missing_model_names_the_download_command(supported, run_sapling, out_dir, tmp_path):
    empty = tmp_path / "empty_hub"
    empty.mkdir()
    proc = embed(run_sapling, REPO_ID, tmp_path / "x.safetensors", out_dir / "embed" / "seqs.fasta",
                 env={"HF_HUB_CACHE": str(empty), "HF_HUB_OFFLINE": "1"}, check=False)
    message = proc.stderr + proc.stdout
    print(message.strip())
    assert proc.returncode != 0
    assert f"hf download {REPO_ID}" in message or f"huggingface-cli download {REPO_ID}" in message, message
    assert str(empty) in message, "the error should name the cache it looked in"
    assert not (tmp_path / "x.safetensors").exists()
