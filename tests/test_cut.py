"""CUT: option validation, the κ table, masks from hand-made scores, calibrated plans, and an
end-to-end smoke run with its saved compact model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from cutlib.checkpoint import load_model, save_model
from cutlib.experiments import (
    RunConfig,
    RunRecord,
    compact_before_finetuning,
    pretrained_task_scores,
    run,
)
from cutlib.io import read_json
from cutlib.methods.context import RunContext
from cutlib.methods.cut import METHOD as CUT
from cutlib.methods.cut import CutOptions
from cutlib.models import SceneNet
from cutlib.profiles import load_profile
from cutlib.pruning.importance import TaskScores, task_importance
from cutlib.pruning.masks import apply_masks, density, owned_by, prunable_weights, sparsity_report
from cutlib.pruning.per_task import CutMasker, plan_cut, table_keep_ratio
from cutlib.tasks import TaskSpec

# --- options ---------------------------------------------------------------------------------


def test_default_options_are_the_authors() -> None:
    options = CutOptions()
    assert (options.criterion, options.fusion, options.min_votes) == ("taylor", "vote", 2)
    assert (options.keep_ratio, options.bn_mode) == ("calibrate", "train")


def test_parse_options_builds_and_checks_names() -> None:
    options = CUT.parse_options({"fusion": "union", "keep_ratio": 0.1, "bn_mode": "eval"})
    assert options == CutOptions(fusion="union", keep_ratio=0.1, bn_mode="eval")
    with pytest.raises(ValueError, match="unknown option 'nope'; valid options: criterion"):
        CUT.parse_options({"fusion": "union", "nope": 1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fusion", "plurality"),
        ("criterion", "snip"),
        ("bn_mode", "frozen"),
        ("min_votes", 0),
        ("min_votes", 1.5),
        ("min_votes", True),
    ],
)
def test_bad_option_values_raise(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        CutOptions(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        CUT.parse_options({field: value})


@pytest.mark.parametrize("keep_ratio", ["table", "calibrate", 0.1, 1, 1.0, 0.001])
def test_valid_keep_ratios_are_accepted(keep_ratio: str | float) -> None:
    assert CutOptions(keep_ratio=keep_ratio).keep_ratio == keep_ratio


@pytest.mark.parametrize("keep_ratio", [0, 0.0, 1.5, -0.1, "nope", True, False, None])
def test_invalid_keep_ratios_are_rejected(keep_ratio: object) -> None:
    with pytest.raises(ValueError, match="keep_ratio"):
        CutOptions(keep_ratio=keep_ratio)  # type: ignore[arg-type]


def test_table_keep_ratio() -> None:
    table = {0.9: 0.08, 0.7: 0.257}
    assert table_keep_ratio(0.9, table) == 0.08
    assert table_keep_ratio(0.7, table) == 0.257
    assert table_keep_ratio(0.8, table) == pytest.approx(0.2, abs=1e-12)  # fallback: 1 − s
    assert table_keep_ratio(0.3, None) == pytest.approx(0.7, abs=1e-12)
    assert table_keep_ratio(0.9, {"0.9": "0.08"}) == 0.08  # YAML may give strings
    paper = load_profile("paper").scoring.keep_ratios
    assert table_keep_ratio(0.9, paper) == 0.08 and table_keep_ratio(0.5, paper) == 0.46


#: What :func:`~cutlib.pruning.thresholds.calibrate` promises: the sparsity it reaches is within
#: 2e-4 (0.02 points) of the target, when the masks are fine enough to get there.
CALIBRATION_TOLERANCE = 2e-4

# --- masks from scores -----------------------------------------------------------------------

#: Three tasks over a shared "s" (4 entries) and their heads (4 entries each): 8 per sub-model,
#: so κ = 0.5 keeps each task's top 4.
SCORES = {
    # top 4: s0 (8), s1 (7), ha0 (6), ha1 (5)
    "a": {"s": torch.tensor([8.0, 7, 1, 0]), "ha": torch.tensor([6.0, 5, 2, 3])},
    # top 4: s2 (8), s1 (7), hb0 (6), hb2 (5)
    "b": {"s": torch.tensor([0.0, 7, 8, 1]), "hb": torch.tensor([6.0, 2, 5, 3])},
    # would keep the whole shared tensor if it voted
    "c": {"s": torch.tensor([9.0, 9, 9, 9]), "hc": torch.tensor([0.0, 0, 0, 0])},
}


def _as_lists(masks: dict[str, Tensor]) -> dict[str, list[bool]]:
    return {n: m.tolist() for n, m in masks.items()}


def test_cut_masker_fuses_only_the_selected_tasks() -> None:
    masker = CutMasker(SCORES, ["a", "b"], {"s"})
    assert _as_lists(masker.task_masks(0.5)["a"]) == {
        "s": [True, True, False, False],
        "ha": [True, True, False, False],
    }
    assert set(masker.task_masks(0.5)) == {"a", "b"}
    assert _as_lists(masker(0.5)) == {
        "s": [False, True, False, False],  # 2 of 2 votes: only s1
        "ha": [True, True, False, False],  # each head keeps its own task's mask
        "hb": [True, False, True, False],
    }
    union = CutMasker(SCORES, ["a", "b"], {"s"}, fusion="union")(0.5)
    assert union["s"].tolist() == [True, True, True, False]
    assert union["ha"].tolist() == [True, True, False, False]
    # With c voting too, 2 of 3 votes would keep s0, s1, s2: c's scores must have been ignored.
    with_c = CutMasker(SCORES, ["a", "b", "c"], {"s"})(0.5)
    assert with_c["s"].tolist() == [True, True, True, False]
    assert with_c["hc"].tolist() == [False, False, False, False]  # c spent its 4 on "s"


def test_cut_masker_with_one_task_keeps_its_own_mask() -> None:
    masks = CutMasker(SCORES, ["b"], {"s"})(0.5)
    assert _as_lists(masks) == {"s": [False, True, True, False], "hb": [True, False, True, False]}


def test_cut_masker_ignores_shared_names_without_scores_and_checks_tasks() -> None:
    masks = CutMasker(SCORES, ["a", "b"], {"s", "missing"})(0.5)
    assert set(masks) == {"s", "ha", "hb"}
    with pytest.raises(ValueError, match="no scores for selected task"):
        CutMasker(SCORES, ["a", "d"], {"s"})
    with pytest.raises(ValueError, match="at least one selected task"):
        CutMasker(SCORES, [], {"s"})


TINY_TASKS = (
    TaskSpec("seg", "seg", 3, ignore_value=255),
    TaskSpec("sn", "sn", 3),
    TaskSpec("depth", "depth", 1),
)


def _tiny_masker(fusion: str = "vote") -> tuple[SceneNet, CutMasker]:
    torch.manual_seed(0)
    net = SceneNet(TINY_TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0)
    scores = task_importance(net, [], ["seg", "depth"], "magnitude")
    net.keep_tasks(["seg", "depth"])
    shared = {w.name for w in owned_by(net, {"backbone"})}
    return net, CutMasker(scores, ["seg", "depth"], shared, fusion)  # type: ignore[arg-type]


@pytest.mark.parametrize("fusion", ["vote", "union"])
def test_plan_cut_calibrates_to_the_requested_sparsity(fusion: str) -> None:
    net, masker = _tiny_masker(fusion)
    plan = plan_cut(masker, 0.9)
    assert abs(plan.sparsity - 0.9) <= CALIBRATION_TOLERANCE
    assert plan.sparsity == pytest.approx(1.0 - density(plan.masks), abs=1e-12)
    assert set(plan.masks) == {w.name for w in prunable_weights(net)}
    rebuilt = masker(plan.keep_ratio)
    assert all(torch.equal(rebuilt[n], plan.masks[n]) for n in plan.masks)
    apply_masks(net, plan.masks)
    assert sparsity_report(net)["achieved"] == pytest.approx(plan.sparsity, abs=1e-12)


def test_plan_cut_with_table_or_number_uses_that_kappa() -> None:
    _, masker = _tiny_masker()
    table = plan_cut(masker, 0.9, "table", {0.9: 0.08})
    assert table.keep_ratio == 0.08
    assert all(torch.equal(table.masks[n], m) for n, m in masker(0.08).items())
    fallback = plan_cut(masker, 0.7, "table", None)
    assert fallback.keep_ratio == pytest.approx(0.3)
    number = plan_cut(masker, 0.9, 0.25)
    assert number.keep_ratio == 0.25
    assert number.sparsity == pytest.approx(1.0 - density(masker(0.25)), abs=1e-12)
    assert all(torch.equal(number.masks[n], m) for n, m in masker(0.25).items())


# --- run configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        RunConfig("synth-nyuv2", "cut", (), 0.9, "smoke"),
        RunConfig("synth-nyuv2", "cut", ("seg", "edge"), 0.9, "smoke"),
        RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 1.0, "smoke"),
        RunConfig("synth-nyuv2", "cut", ("seg", "depth"), -0.1, "smoke"),
        RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 0.9, "smoke", options=(("nope", 1),)),
        RunConfig("synth-nyuv2", "cut", None, 0.9, "smoke", options=(("fusion", "any"),)),
        RunConfig("synth-nyuv2", "dense", options=(("fusion", "union"),)),
    ],
    ids=[
        "no-tasks",
        "unknown-task",
        "sparsity-1",
        "negative",
        "unknown-option",
        "bad-fusion",
        "dense-options",
    ],
)
def test_invalid_run_configs_raise(config: RunConfig) -> None:
    with pytest.raises(ValueError):
        config.validated()


def test_cut_run_config_normalises() -> None:
    config = RunConfig(
        "synth-nyuv2", "cut", ("depth", "seg"), options=(("fusion", "union"), ("bn_mode", "eval"))
    ).validated()
    assert config.tasks == ("seg", "depth") and config.sparsity == 0.9
    assert config.options == (("bn_mode", "eval"), ("fusion", "union"))
    assert config.method_options() == CutOptions(fusion="union", bn_mode="eval")
    explicit = RunConfig(
        "synth-nyuv2", "cut", options=(("fusion", "vote"), ("criterion", "taylor"))
    )
    assert explicit.validated() == RunConfig("synth-nyuv2", "cut").validated()


# --- end to end ------------------------------------------------------------------------------

CUT_SMOKE = RunConfig("synth-nyuv2", "cut", ("seg", "depth"), 0.9, "smoke")


class CutSmoke(NamedTuple):
    """The shared CUT smoke run, the per-task scores it pruned with (captured as it ran), and the
    results folder holding it and its pre-training."""

    record: RunRecord
    scores: TaskScores
    results: Path


@pytest.fixture(scope="module")
def cut_smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CutSmoke]:
    """One CUT smoke run (with its pre-training) shared by the end-to-end tests."""
    captured: list[TaskScores] = []
    scored = RunContext.task_scores

    def capture(ctx: RunContext, *args: object, **kwargs: object) -> TaskScores:
        scores = scored(ctx, *args, **kwargs)  # type: ignore[arg-type]
        captured.append({t: {n: s.clone() for n, s in per.items()} for t, per in scores.items()})
        return scores

    results = tmp_path_factory.mktemp("cut") / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUTLIB_RESULTS", str(results))
        patch.setattr(RunContext, "task_scores", capture)
        record = run(CUT_SMOKE, progress=False)
    (scores,) = captured  # the pre-training scores nothing; CUT scores once
    yield CutSmoke(record, scores, results)


@pytest.fixture
def cut_run(cut_smoke: CutSmoke) -> RunRecord:
    return cut_smoke.record


def _zero_fraction(model: SceneNet) -> float:
    weights = [w.weight.detach() for w in prunable_weights(model)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@pytest.mark.slow
def test_cut_run_saves_a_compact_model(cut_run: RunRecord) -> None:
    payload = torch.load(cut_run.directory / "model.pt", weights_only=True)
    assert payload["tasks"] == ["seg", "depth"]
    assert [t["name"] for t in payload["config"]["tasks"]] == ["seg", "depth"]
    state = payload["state_dict"]
    assert not any(k.startswith("heads.sn") for k in state)
    assert not any("_orig" in k or "_mask" in k for k in state)
    assert any(k.startswith("heads.seg.") for k in state)
    assert any(k.startswith("heads.depth.") for k in state)

    model = load_model(cut_run.directory / "model.pt")
    assert model.task_names == ("seg", "depth") and "sn" not in model.heads
    assert not any(k.startswith("heads.sn") for k in model.state_dict())
    zeros = _zero_fraction(model)
    assert abs(zeros - 0.9) <= CALIBRATION_TOLERANCE
    assert cut_run.metrics["sparsity"]["achieved"] == pytest.approx(zeros, abs=1e-9)
    assert cut_run.metrics["sparsity"]["target"] == 0.9
    # The saved weights equal the loaded ones: the zeros are in the file itself.
    for w in prunable_weights(model):
        assert torch.equal(state[w.name], w.weight.detach())


@pytest.mark.slow
def test_cut_run_metrics_record(cut_run: RunRecord) -> None:
    m = cut_run.metrics
    assert m["method"] == "cut" and m["tasks"] == ["seg", "depth"]
    assert m["params"]["total"] < m["params"]["dense_total"]
    assert m["params"]["nonzero"] < m["params"]["total"]
    assert {"scoring", "fusion", "finetune"} <= set(m["timings"])
    details = m["details"]
    assert {"keep_ratio", "metrics_before_finetune"} <= set(details)
    assert 0.0 < details["keep_ratio"] < 1.0
    assert set(details["metrics_before_finetune"]) == {"seg", "depth"}
    history = read_json(cut_run.directory / "history.json")
    assert details["finetune_selected_iteration"] in {h["iteration"] for h in history}
    assert details["options"]["fusion"] == "vote" and details["options"]["criterion"] == "taylor"
    assert set(m["metrics"]) == {"seg", "depth"} and set(m["sparsity"]["heads"]) == {"seg", "depth"}


@pytest.mark.slow
def test_saved_model_round_trips_exactly(cut_run: RunRecord, tmp_path: Path) -> None:
    model = load_model(cut_run.directory / "model.pt").eval()
    save_model(model, tmp_path / "again.pt")
    clone = load_model(tmp_path / "again.pt").eval()
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), clone(x)
    assert list(a) == list(b) == ["seg", "depth"]
    for task in a:
        assert torch.equal(a[task], b[task])
    assert clone.config() == model.config()


@pytest.mark.slow
def test_cut_run_masks_are_per_task_top_kappa_with_a_two_vote_backbone(cut_smoke: CutSmoke) -> None:
    """The zeros of the saved model are recomputed from the scores the run pruned with and the κ
    it recorded: per task, the global top ⌊κ·N_t⌋ of its sub-model by a plain sort; a backbone
    weight survives when both tasks keep it (min(2, 2 tasks) votes), each head keeps its own
    task's top. Fine-tuning keeps masked weights at exactly zero (a trained weight landing on 0.0
    exactly has vanishing probability)."""
    scores, record = cut_smoke.scores, cut_smoke.record
    kappa = record.metrics["details"]["keep_ratio"]
    assert set(scores) == {"seg", "depth"}
    kept: dict[str, dict[str, Tensor]] = {}
    for task, per_name in scores.items():
        flat = torch.cat([s.reshape(-1) for s in per_name.values()])
        k = math.floor(kappa * flat.numel())
        ordered = torch.sort(flat, descending=True).values
        assert ordered[k - 1] > ordered[k]  # no tie at the threshold: the top k is unambiguous
        keep = flat >= ordered[k - 1]
        parts = torch.split(keep, [s.numel() for s in per_name.values()])
        shapes = {n: s.shape for n, s in per_name.items()}
        kept[task] = {n: p.reshape(shapes[n]) for n, p in zip(shapes, parts, strict=True)}

    backbone = [n for n in scores["seg"] if n.startswith("backbone.")]
    assert backbone == [n for n in scores["depth"] if n.startswith("backbone.")]
    expected = {n: kept["seg"][n] & kept["depth"][n] for n in backbone}  # 2 votes of 2
    for task in ("seg", "depth"):
        head = [n for n in scores[task] if n.startswith(f"heads.{task}.")]
        assert head and len(head) + len(backbone) == len(scores[task])
        expected |= {n: kept[task][n] for n in head}

    state = load_model(record.directory / "model.pt").state_dict()
    weights = {n: w for n, w in state.items() if n.endswith("weight") and w.dim() == 4}
    assert set(weights) == set(expected)  # every conv weight of the deployed model, no other
    for name, mask in expected.items():
        assert torch.equal(weights[name] != 0, mask), name
    pruned = sum(int((~m).sum()) for m in expected.values())
    total = sum(m.numel() for m in expected.values())
    assert abs(pruned / total - 0.9) <= CALIBRATION_TOLERANCE  # κ really is the calibrated one


@pytest.mark.slow
def test_pretrained_task_scores_are_the_scores_a_cut_run_prunes_with(
    cut_smoke: CutSmoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTLIB_RESULTS", str(cut_smoke.results))  # its pre-trained run
    model, scores = pretrained_task_scores("synth-nyuv2", "smoke", ("seg", "depth"))
    assert model.task_names == ("seg", "sn", "depth")  # the dense model, all heads
    assert list(scores) == list(cut_smoke.scores)
    for task, per_name in cut_smoke.scores.items():
        assert list(scores[task]) == list(per_name)
        for name, expected in per_name.items():
            assert torch.equal(scores[task][name], expected), (task, name)


@pytest.mark.slow
def test_compact_before_finetuning_is_what_the_cut_run_started_from(
    cut_smoke: CutSmoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUTLIB_RESULTS", str(cut_smoke.results))
    details = cut_smoke.record.metrics["details"]
    kappa, metrics = compact_before_finetuning("synth-nyuv2", "smoke", ("seg", "depth"), 0.9)
    assert kappa == details["keep_ratio"]
    assert metrics == details["metrics_before_finetune_bn"]  # BatchNorm re-estimated, by default
    _, stale = compact_before_finetuning(
        "synth-nyuv2", "smoke", ("seg", "depth"), 0.9, reestimate_batchnorm=False
    )
    assert stale == details["metrics_before_finetune"] != metrics
    union_kappa, _ = compact_before_finetuning(
        "synth-nyuv2", "smoke", ("seg", "depth"), 0.9, fusion="union"
    )
    assert union_kappa < kappa  # the union keeps more shared weights per task at the same κ
