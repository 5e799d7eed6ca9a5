"""Bad input to the CLI: one line naming the valid choices, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutlib.cli import main

RUN = ["run", "--dataset", "synth-nyuv2", "--profile", "smoke"]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["run", "--dataset", "nope"], "synth-nyuv2, synth-cityscapes, synth-taskonomy"),
        ([*RUN, "--method", "nope"], "valid methods: dense"),
        ([*RUN, "--tasks", "nope"], "valid tasks: seg, sn, depth"),
        ([*RUN, "--tasks", "seg,seg"], "valid tasks: seg, sn, depth"),
        ([*RUN, "--sparsity", "1.5"], "[0, 1)"),
        ([*RUN, "--sparsity", "-0.1"], "[0, 1)"),
        ([*RUN, "--sparsity", "0.5"], "dense method prunes nothing"),
        ([*RUN[:3], "--profile", "nope"], "smoke, quick, study, regime, full, paper"),
        ([*RUN, "--method", "cut", "--tasks", ""], "no task selected; valid tasks: seg, sn, depth"),
        ([*RUN, "--method", "cut", "--sparsity", "1.0"], "[0, 1)"),
        ([*RUN, "--method", "cut", "-o", "nope=1"], "valid options: criterion, fusion"),
        ([*RUN, "--method", "cut", "-o", "fusion=nope"], "vote, union, intersection, majority"),
        ([*RUN, "--method", "cut", "-o", "keep_ratio=2"], "calibrate, table or a number"),
        ([*RUN, "--method", "cut", "-o", "fusion"], "expected NAME=VALUE"),
        ([*RUN, "-o", "fusion=union"], "method 'dense' takes no options"),
        (["reproduce", "--profile", "nope"], "smoke, quick, study, regime, full, paper"),
        (["reproduce", "--profile", "smoke", "--only", "99"], "valid notebooks: 00, 01"),
        (["reproduce", "--profile", "smoke", "-p", "nope=1"], "valid parameters:"),
        (["run", "--dataset"], "expected one argument"),
        ([*RUN, "--device", "cdua"], "unknown device 'cdua'"),
        ([*RUN, "--device", "cuda:99"], "device 'cuda:99' is not available"),
        (["grid", "--profile", "smoke", "--device", "cdua"], "unknown device 'cdua'"),
        (["bench", "--profile", "nope"], "smoke, quick, study, regime, full, paper"),
        (["bench", "--dataset", "nope"], "synth-nyuv2, synth-cityscapes"),
        (["bench", "--variants", "eager,fast"], "valid: eager, channels_last, compile"),
        (["bench", "--device", "cdua"], "unknown device 'cdua'"),
        (["bench", "--device", "meta"], "device 'meta' is not available"),
        (["bench", "--threads", "0"], "--threads must be at least 1"),
        (["bench", "--seconds", "0"], "--seconds must be positive"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str], isolated_results: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert names in lines[0]
    assert captured.out == ""
    assert not isolated_results.exists(), "bad input must not write anything"
