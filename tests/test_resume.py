"""Resumable runs (cutlib.resume): a run killed with SIGKILL in the middle of training and run
again ends exactly as a run that was never interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cutlib.experiments import RunConfig, pretraining_config, run, run_directory
from cutlib.resume import FOLDER, RunCheckpoints

#: The child trains with a checkpoint every 3 iterations and kills itself (SIGKILL, no clean-up)
#: right after optimiser step KILL_AT, counted over every optimiser of the process.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from cutlib.experiments import RunConfig, run

    method, kill_at = sys.argv[1], int(sys.argv[2])
    steps = 0

    def count(optimizer, args, kwargs):
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    from torch.optim.optimizer import register_optimizer_step_post_hook
    register_optimizer_step_post_hook(count)
    tasks = None if method == "dense" else ("seg", "depth")
    run(RunConfig("synth-nyuv2", method, tasks, profile="smoke"), device="cpu", progress=False,
        checkpoint_every=3)
    """
)


def _config(method: str) -> RunConfig:
    tasks = None if method == "dense" else ("seg", "depth")
    return RunConfig("synth-nyuv2", method, tasks, profile="smoke").validated()


# (method, optimiser step to die after): dense pre-training (30 steps, after LTH's rewinding
# point at 3), CUT's fine-tuning (20), RigL's training with mask updates every 5 (20), LTH's second
# of two rounds (10 steps each: the first round finished, the second in progress).
CASES = [("dense", 20), ("cut", 14), ("rigl", 14), ("lth", 15)]


@pytest.mark.parametrize(("method", "kill_at"), CASES)
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    method: str,
    kill_at: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    assert_same_runs: Callable[[Path, Path], None],
) -> None:
    config = _config(method)
    reference = run(config, device="cpu", progress=False, checkpoint_every=0).directory
    assert not (reference / FOLDER).exists()  # cleared once the run has finished

    interrupted = tmp_path / "interrupted"
    monkeypatch.setenv("CUTLIB_RESULTS", str(interrupted))
    if method != "dense":  # the same pre-trained model: only the method's own steps count
        pretrained = run_directory(pretraining_config(config))
        shutil.copytree(reference.parent / pretrained.name, pretrained)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(kill_at)],
        env=os.environ | {"CUTLIB_RESULTS": str(interrupted)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    directory = run_directory(config)
    assert not (directory / "metrics.json").exists()
    assert list((directory / FOLDER).glob("*.progress.pt"))  # it died mid-stage, checkpointed

    resumed = run(config, device="cpu", progress=False, checkpoint_every=3).directory
    assert not (resumed / FOLDER).exists()
    assert_same_runs(resumed, reference)


def test_checkpoints_are_numbered_by_stage_and_refuse_a_negative_interval(tmp_path: Path) -> None:
    checkpoints = RunCheckpoints(tmp_path, 5)
    first, second = checkpoints.stage("finetune"), checkpoints.stage("finetune")
    assert (first.key, second.key) == ("01-finetune", "02-finetune")
    assert [first.due(i, 12) for i in (5, 10, 12)] == [True, True, False]
    assert not checkpoints.resumable()
    first.save_progress({"iteration": 5})
    assert checkpoints.resumable() and first.progress() == {"iteration": 5}
    first.save_finished({"done": True})
    assert first.finished() == {"done": True} and first.progress() is None
    checkpoints.clear()
    assert not (tmp_path / FOLDER).exists()
    with pytest.raises(ValueError, match="checkpoint_every must be ≥ 0"):
        RunCheckpoints(tmp_path, -1)
