"""TensorBoard reads sapling train's event files: every numeric metrics.jsonl value as "<type>/<key>" at its step."""
import json
import math
import shutil

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REL_TOL = 1e-6  # event files store float32; metrics.jsonl float64 (float32 rounding is 6e-8 relative)


def expected_scalars(metrics_path):
    """{tag: [(step, value), ...]} in file order, from every numeric (not boolean) key of each line but "step"."""
    out = {}
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out.setdefault(f"{record['type']}/{key}", []).append((record["step"], float(value)))
    return out


def read_events(folder):
    # size_guidance 0: keep every scalar (the default reservoir samples long runs).
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def compare(run):
    expected = expected_scalars(run / "metrics.jsonl")
    events = read_events(run / "tensorboard")
    assert set(events) == set(expected), f"tags only in events {sorted(set(events) - set(expected))}, " \
                                         f"only in metrics.jsonl {sorted(set(expected) - set(events))}"
    worst = 0.0
    for tag, values in expected.items():
        got = events[tag]
        assert [s for s, _ in got] == [s for s, _ in values], f"{tag}: steps {got} vs {values}"
        for (step, want), (_, value) in zip(values, got):
            assert math.isclose(value, want, rel_tol=REL_TOL, abs_tol=1e-30), f"{tag} at {step}: {value} vs {want}"
            worst = max(worst, abs(value - want) / max(abs(want), 1e-30))
    print(f"{run.name}: {len(expected)} tags, {sum(map(len, expected.values()))} scalars, "
          f"max relative difference {worst:.3g}")


@pytest.fixture(scope="module")
def esm2_run(out_dir):
    run = out_dir / "esm2_run"
    if not (run / "tensorboard").is_dir():
        pytest.skip(f"{run} has no tensorboard/ folder: this build of sapling train writes no TensorBoard events")
    return run


@pytest.mark.parametrize("family", ["esm2", "amplify"])
def test_event_files_equal_metrics_jsonl(esm2_run, out_dir, family):
    compare(out_dir / f"{family}_run")


def test_resumed_run_reads_as_one_history(esm2_run, out_dir, repo, run_sapling, tmp_path):
    # --resume appends a second event file; TensorBoard must read both files as the single history metrics.jsonl has.
    run = tmp_path / "esm2_run"
    shutil.copytree(esm2_run, run)
    run_sapling("train", "tests/interop/interop.toml", "--out", run, "--resume", "--max-steps", "4", "--quiet",
                "--threads", "1", "--set", f"model.path={repo / 'tests' / 'fixtures' / 'esm2_tiny'}",
                "--set", f"data.dataset={out_dir / 'dataset'}")
    files = sorted((run / "tensorboard").iterdir())
    print(f"event files after --resume: {[f.name for f in files]}")
    compare(run)
