"""The baselines on the shared machinery: every method hits the requested sparsity of the deployed
model; DiSparse's arbiter is the union where CUT's is the vote; magnitude pruning keeps the largest
weights; LTH rewinds to the early weights; SNIP scores the joint loss at initialisation; the two
training protocols give the budgets they promise."""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cutlib.experiments as experiments
import cutlib.methods.context as context
from cutlib.checkpoint import load_model
from cutlib.experiments import RunConfig, RunRecord, pretrained_run, resolve, run
from cutlib.grid import planned_iterations
from cutlib.losses import multitask_loss
from cutlib.methods import METHODS, Method, RunContext
from cutlib.models import SceneNet
from cutlib.profiles import Profile, load_profile
from cutlib.pruning.importance import joint_importance, task_importance
from cutlib.pruning.masks import BACKBONE, prunable_weights
from cutlib.pruning.thresholds import Ranking
from cutlib.tasks import TaskSpec
from cutlib.train import TrainConfig, TrainResult

#: Every method that prunes weights (the registry's; channel pruning is tested on its own).
PRUNING = [n for n, m in METHODS.items() if m.trains and m.prunes and m.sparsity == "weights"]
#: The methods that train in rounds or from scratch, where the protocol changes the budget.
PROTOCOL_BOUND = [name for name, m in METHODS.items() if not m.protocol_free]
TASKS = ("seg", "depth")
#: The sparsity a method reaches is within this of its target: the global top-k methods are exact
#: to one weight, the calibrated ones within calibrate's tolerance (0.02 points).
CALIBRATION_TOLERANCE = 2e-4


def _smoke(method: str, *options: tuple[str, object], protocol: str = "fair") -> RunRecord:
    config = RunConfig(
        "synth-nyuv2", method, TASKS, 0.9, "smoke", options=options, protocol=protocol
    )
    return run(config, progress=False)


def _weights(model: SceneNet) -> dict[str, torch.Tensor]:
    return {w.name: w.weight.detach() for w in prunable_weights(model)}


def _zero_fraction(model: SceneNet) -> float:
    weights = list(_weights(model).values())
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


# --- every method, end to end -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", PRUNING)
def test_each_method_hits_the_sparsity_of_the_deployed_model(
    method: str, shared_results: Path
) -> None:
    record = _smoke(method)
    model = load_model(record.directory / "model.pt")
    assert model.task_names == TASKS and "sn" not in model.heads
    assert abs(_zero_fraction(model) - 0.9) <= CALIBRATION_TOLERANCE
    assert record.metrics["sparsity"]["achieved"] == pytest.approx(_zero_fraction(model))
    assert record.metrics["protocol"] == "fair"
    assert record.metrics["params"]["total"] < record.metrics["params"]["dense_total"]
    config = RunConfig("synth-nyuv2", method, TASKS, 0.9, "smoke").validated()
    assert record.metrics["details"]["training"]["iterations"] == planned_iterations(config)


@pytest.mark.slow
@pytest.mark.parametrize("method", PROTOCOL_BOUND)
def test_the_grid_plans_the_steps_each_method_takes_under_paper(
    method: str, shared_results: Path
) -> None:
    record = _smoke(method, protocol="paper")
    config = RunConfig("synth-nyuv2", method, TASKS, 0.9, "smoke", protocol="paper").validated()
    assert record.metrics["details"]["training"]["iterations"] == planned_iterations(config)


# --- arbiters ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_disparse_unions_the_same_task_masks_that_cut_votes_on(shared_results: Path) -> None:
    """With the same scores (Taylor on the pre-trained weights) and the same κ, DiSparse keeps a
    backbone weight that either task keeps, CUT only those both keep; heads are identical."""
    kappa = ("keep_ratio", 0.2)
    union = load_model(_smoke("disparse_pt", ("criterion", "taylor"), kappa).directory / "model.pt")
    vote = load_model(_smoke("cut", kappa).directory / "model.pt")
    kept_union = {n: w != 0 for n, w in _weights(union).items()}
    kept_vote = {n: w != 0 for n, w in _weights(vote).items()}
    backbone = [w.name for w in prunable_weights(vote) if w.owner == BACKBONE]
    heads = [w.name for w in prunable_weights(vote) if w.owner != BACKBONE]
    assert all((kept_vote[n] & ~kept_union[n]).sum() == 0 for n in backbone)
    assert sum(int(kept_union[n].sum()) for n in backbone) > sum(
        int(kept_vote[n].sum()) for n in backbone
    )
    assert all(torch.equal(kept_union[n], kept_vote[n]) for n in heads)


# --- magnitude, LTH, SNIP: masks checked against an independent computation ------------------


@pytest.fixture
def fresh_store(session_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results folder holding only the (really trained) smoke pre-training run, so the method
    under test is computed afresh."""
    monkeypatch.setenv("CUTLIB_RESULTS", str(session_store))
    dense = pretrained_run(RunConfig("synth-nyuv2", profile="smoke"), progress=False)
    results = tmp_path / "fresh"
    shutil.copytree(dense, results / "runs" / dense.name)
    monkeypatch.setenv("CUTLIB_RESULTS", str(results))
    return results


@pytest.fixture
def no_training(
    fresh_store: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, torch.Tensor]]:
    """Replace training by a no-op that records the prunable weights it was handed."""
    seen: list[dict[str, torch.Tensor]] = []

    def fake_train(model: SceneNet, *args: object, **kwargs: object) -> TrainResult:
        seen.append({n: w.clone() for n, w in _weights(model).items()})
        return TrainResult()

    monkeypatch.setattr(context, "train", fake_train)
    return seen


def _pretrained_compact() -> SceneNet:
    directory = pretrained_run(RunConfig("synth-nyuv2", profile="smoke"), progress=False)
    return load_model(directory / "model.pt").keep_tasks(TASKS)


def test_magnitude_keeps_exactly_the_largest_pretrained_weights(no_training: list) -> None:
    dense = _pretrained_compact()
    pruned = load_model(_smoke("magnitude").directory / "model.pt")
    magnitudes = torch.cat([w.abs().reshape(-1) for w in _weights(dense).values()])
    kept = torch.cat([(w != 0).reshape(-1) for w in _weights(pruned).values()])
    assert int(kept.sum()) == int(0.1 * magnitudes.numel())
    assert magnitudes[kept].min() >= magnitudes[~kept].max()


@pytest.fixture
def scripted_training(
    fresh_store: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """Replace training by a script: record the prunable weights each round is handed, then
    "train" by overwriting every prunable weight (under its mask) with seeded Gaussian values,
    recorded too, so the next round's pruning has known weights to rank."""
    handed: list[dict[str, torch.Tensor]] = []
    trained: list[dict[str, torch.Tensor]] = []

    def fake_train(model: SceneNet, *args: object, **kwargs: object) -> TrainResult:
        handed.append({n: w.clone() for n, w in _weights(model).items()})
        generator = torch.Generator().manual_seed(len(handed))
        values = {}
        with torch.no_grad():
            for w in prunable_weights(model):
                values[w.name] = torch.randn(w.weight.shape, generator=generator)
                masked = hasattr(w.module, "weight_orig")
                (w.module.weight_orig if masked else w.module.weight).copy_(values[w.name])
        trained.append(values)
        return TrainResult()

    monkeypatch.setattr(context, "train", fake_train)
    return handed, trained


def _top_among(
    values: dict[str, torch.Tensor], alive: dict[str, torch.Tensor], k: int
) -> dict[str, torch.Tensor]:
    """The k entries of largest |value| among the ``alive`` ones, across all tensors (a plain
    sort; the premise that no tie straddles the threshold is checked)."""
    names = list(values)
    flat = torch.cat([values[n].abs().reshape(-1) for n in names])
    live = torch.cat([alive[n].reshape(-1) for n in names])
    ranked = torch.where(live, flat, -1.0)
    ordered = torch.sort(ranked, descending=True).values
    assert 0 < k <= int(live.sum()) and ordered[k - 1] > ordered[k]
    keep = ranked >= ordered[k - 1]
    parts = torch.split(keep, [values[n].numel() for n in names])
    return {n: p.reshape(values[n].shape) for n, p in zip(names, parts, strict=True)}


def _check_iterative_rounds(
    method: str, handed: list, trained: list, rewind: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Round r = 1…R keeps the top ⌊(1 − s)^{r/R}·N⌋ of the previous survivors by the magnitude
    of the weights as the previous round left them (the pre-trained ones at r = 1); the round
    starts from those weights (IMP) or from the rewind weights (LTH), masked. Returns the
    weights the last round's training left."""
    rounds = load_profile("smoke", "synth-nyuv2").baselines.rounds
    current = _weights(_pretrained_compact())
    total = sum(w.numel() for w in current.values())
    alive = {n: torch.ones_like(w, dtype=torch.bool) for n, w in current.items()}
    assert rounds >= 2 and len(handed) == rounds
    for r in range(1, rounds + 1):
        k = math.floor((1 - 0.9) ** (r / rounds) * total)
        expected = _top_among(current, alive, k)
        assert all(not (expected[n] & ~alive[n]).any() for n in alive)  # nested
        start = rewind if rewind is not None else current
        got = handed[r - 1]
        assert sum(int((w != 0).sum()) for w in got.values()) == k, (method, r)
        for name, mask in expected.items():
            assert torch.equal(got[name] != 0, mask), (method, r, name)
            assert torch.equal(got[name], start[name] * mask), (method, r, name)
        alive = expected
        current = {n: trained[r - 1][n] * expected[n] for n in expected}
    return current


def test_imp_prunes_each_round_to_its_budget_among_the_trained_survivors(
    scripted_training: tuple[list, list],
) -> None:
    handed, trained = scripted_training
    record = _smoke("imp")
    final = _check_iterative_rounds("imp", handed, trained, rewind=None)
    saved = _weights(load_model(record.directory / "model.pt"))
    assert all(torch.equal(saved[n], final[n]) for n in final)


def test_lth_prunes_the_trained_weights_then_rewinds_the_survivors(
    scripted_training: tuple[list, list],
) -> None:
    """Each round ranks the weights its predecessor trained, then restarts the survivors from
    the early weights W_k (``rewind.pt``), not from the trained or pre-trained ones."""
    handed, trained = scripted_training
    directory = pretrained_run(RunConfig("synth-nyuv2", profile="smoke"), progress=False)
    early = _weights(load_model(directory / "rewind.pt").keep_tasks(TASKS))
    assert not all(torch.equal(early[n], w) for n, w in _weights(_pretrained_compact()).items())
    _smoke("lth")
    _check_iterative_rounds("lth", handed, trained, rewind=early)


def _initial_compact(profile: Profile) -> SceneNet:
    """W₀ of the deployed model, rebuilt: the seed, then the network with every head."""
    torch.manual_seed(0)
    return SceneNet(_specs(profile), **profile.model.kwargs()).keep_tasks(TASKS)


def test_random_pruning_keeps_a_uniform_fraction_of_the_initial_weights(
    no_training: list,
) -> None:
    """Exactly ⌊(1 − s)·N⌋ weights survive, spread over the layers as uniform draws would be
    (every large layer keeps 10 % up to sampling noise, which magnitude ranking would not), and
    the network that trains is W₀ itself, masked."""
    record = _smoke("random")
    initial = _weights(_initial_compact(load_profile("smoke", "synth-nyuv2")))
    (handed,) = no_training
    total = sum(w.numel() for w in initial.values())
    assert sum(int((w != 0).sum()) for w in handed.values()) == math.floor((1 - 0.9) * total)
    for name, weight in handed.items():
        assert torch.equal(weight, initial[name] * (weight != 0)), name
        n = weight.numel()
        if n >= 1000:  # hypergeometric draw: within 5 standard deviations of 10 %
            spread = 5 * math.sqrt(n * 0.1 * 0.9 * (1 - n / total))
            assert abs(int((weight != 0).sum()) - 0.1 * n) <= spread, name
    saved = _weights(load_model(record.directory / "model.pt"))
    assert all(torch.equal(saved[n] != 0, handed[n] != 0) for n in handed)


def test_disparse_static_scores_a_xavier_copy_and_masks_the_initial_weights(
    no_training: list,
) -> None:
    """DiSparse's static variant: per-task Taylor scores of a copy of W₀ whose conv weights are
    re-drawn by ``xavier_normal_`` (seeded with the run's seed, in module order), per-task top
    ⌊κ·N_t⌋ by a plain sort, the union of the tasks on the backbone, each head its own task's;
    the masks are installed on W₀ itself."""
    record = _smoke("disparse_static")
    profile = load_profile("smoke", "synth-nyuv2")
    initial = _initial_compact(profile)
    xavier = copy.deepcopy(initial)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in xavier.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight, generator=generator)
    scores = task_importance(
        xavier, _scoring_batches(profile), TASKS, "taylor", align=profile.finetune.align
    )
    kappa = record.metrics["details"]["keep_ratio"]
    kept = {}
    for task, per_name in scores.items():
        everything = {n: torch.ones_like(s, dtype=torch.bool) for n, s in per_name.items()}
        kept[task] = _top_among(
            per_name, everything, math.floor(kappa * sum(s.numel() for s in per_name.values()))
        )
    expected = {}
    for name in _weights(initial):
        owner = name.split(".")[1] if name.startswith("heads.") else None
        if owner is None:
            expected[name] = kept["seg"][name] | kept["depth"][name]  # union: any task keeps it
        else:
            expected[name] = kept[owner][name]
    (handed,) = no_training
    w0 = _weights(initial)
    for name, mask in expected.items():
        assert torch.equal(handed[name] != 0, mask), name
        assert torch.equal(handed[name], w0[name] * mask), name
    pruned = sum(int((~m).sum()) for m in expected.values())
    assert abs(pruned / sum(m.numel() for m in expected.values()) - 0.9) <= CALIBRATION_TOLERANCE


def test_snip_masks_the_initial_network_by_the_joint_loss(no_training: list) -> None:
    record = _smoke("snip")
    profile = load_profile("smoke", "synth-nyuv2")
    ctx_tasks = [t for t in _specs(profile) if t.name in TASKS]
    torch.manual_seed(0)
    initial = SceneNet(_specs(profile), **profile.model.kwargs()).keep_tasks(TASKS)
    assert all(
        torch.equal(w, initial_w * (w != 0))
        for w, initial_w in zip(no_training[0].values(), _weights(initial).values(), strict=True)
    )
    expected = Ranking(
        joint_importance(initial, _scoring_batches(profile), ctx_tasks, "taylor")
    ).masks(0.1)
    saved = load_model(record.directory / "model.pt")
    got = {n: w != 0 for n, w in _weights(saved).items()}
    assert all(torch.equal(got[n], expected[n]) for n in expected)


def _specs(profile: Profile) -> tuple[TaskSpec, ...]:
    from cutlib.data import dataset_tasks

    return dataset_tasks("synth-nyuv2", profile)


def _scoring_batches(profile: Profile) -> list[dict[str, torch.Tensor]]:
    from cutlib.data import load_dataset
    from cutlib.pruning.importance import scoring_batches

    scoring = profile.scoring
    data = load_dataset("synth-nyuv2", "train", profile, 0)
    return scoring_batches(data, scoring.batch_size, scoring.batches, 0)


# --- joint and w2grad scores against independent references ----------------------------------


def _net(three_tasks: tuple[TaskSpec, ...]) -> SceneNet:
    torch.manual_seed(0)  # no dropout, so the reference and the scorer see the same network
    return SceneNet(three_tasks, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=0.0)


def test_joint_importance_is_the_sensitivity_of_the_weighted_loss(
    three_tasks: tuple[TaskSpec, ...],
) -> None:
    tiny_net = _net(three_tasks)
    generator = torch.Generator().manual_seed(2)
    batch = {
        "image": torch.randn(2, 3, 16, 16, generator=generator),
        "seg": torch.randint(0, 5, (2, 16, 16), generator=generator),
        "depth": torch.rand(2, 1, 16, 16, generator=generator) + 0.5,
    }
    specs = [three_tasks[0], three_tasks[2]]
    ref = copy.deepcopy(tiny_net).train()
    params = dict(ref.named_parameters())
    names = [w.name for w in prunable_weights(ref) if w.owner in (BACKBONE, "seg", "depth")]
    loss = multitask_loss(specs, ref(batch["image"]), batch)[0]
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    scores = joint_importance(tiny_net, [batch], ["seg", "depth"])
    assert set(scores) == set(names)
    for name, grad in zip(names, grads, strict=True):
        torch.testing.assert_close(scores[name], (params[name].detach() * grad).abs())


def test_w2grad_is_squared_weight_times_summed_absolute_gradient(
    three_tasks: tuple[TaskSpec, ...],
) -> None:
    tiny_net = _net(three_tasks)
    generator = torch.Generator().manual_seed(3)
    batches = [
        {
            "image": torch.randn(2, 3, 16, 16, generator=generator),
            "depth": torch.rand(2, 1, 16, 16, generator=generator) + 0.5,
        }
        for _ in range(2)
    ]
    ref = copy.deepcopy(tiny_net).train()
    params = dict(ref.named_parameters())
    names = [w.name for w in prunable_weights(ref) if w.owner in (BACKBONE, "depth")]
    total = {n: torch.zeros_like(params[n]) for n in names}
    for batch in batches:
        loss = multitask_loss([three_tasks[2]], ref(batch["image"]), batch)[0]
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        for name, grad in zip(names, grads, strict=True):
            total[name] += grad.abs()
    scores = task_importance(tiny_net, batches, ["depth"], "w2grad")["depth"]
    for name in names:
        torch.testing.assert_close(scores[name], params[name].detach() ** 2 * total[name])


# --- protocols ---------------------------------------------------------------------------------


def _toy(start: str, paper_schedule: str = "finetune", iterative: bool = False) -> Method:
    """A method declaration of each kind (its function is never called here)."""
    return Method("toy", lambda ctx: None, start, "toy", paper_schedule, iterative)  # type: ignore


def test_fair_protocol_gives_every_model_the_same_iterations_since_initialisation() -> None:
    profile = load_profile("smoke", "synth-nyuv2")
    p, f, rounds = profile.pretrain.iterations, profile.finetune.iterations, 3
    profile = profile.override({"baselines": {"rounds": rounds}})
    assert _toy("pretrained").round_schedule(profile, "fair").iterations == f
    assert _toy("scratch", "finetune").round_schedule(profile, "fair").iterations == p + f
    assert _toy("scratch", "pretrain").round_schedule(profile, "fair").iterations == p + f
    assert _toy("scratch").round_schedule(profile, "fair").lr == profile.pretrain.lr
    iterative = _toy("pretrained", iterative=True)
    assert iterative.round_schedule(profile, "fair").iterations == f // rounds
    assert iterative.planned_steps(profile, "fair") == rounds * (f // rounds)


def test_paper_protocol_gives_the_reference_codes_schedules() -> None:
    profile = load_profile("smoke", "synth-nyuv2")
    p, f, rounds = profile.pretrain.iterations, profile.finetune.iterations, 3
    profile = profile.override({"baselines": {"rounds": rounds}})
    assert _toy("pretrained").round_schedule(profile, "paper").iterations == f
    assert _toy("scratch", "finetune").round_schedule(profile, "paper").iterations == f
    assert _toy("scratch", "pretrain").round_schedule(profile, "paper").iterations == p
    iterative = _toy("pretrained", iterative=True)
    assert iterative.round_schedule(profile, "paper").iterations == f
    assert iterative.planned_steps(profile, "paper") == rounds * f


def test_unknown_protocol_and_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'generous'; valid protocols: fair"):
        RunConfig("synth-nyuv2", "snip", protocol="generous").validated()
    with pytest.raises(ValueError, match="method 'snip' takes no options"):
        RunConfig("synth-nyuv2", "snip", options=(("fusion", "vote"),)).validated()
    with pytest.raises(ValueError, match="unknown criterion 'l2'"):
        RunConfig("synth-nyuv2", "disparse_pt", options=(("criterion", "l2"),)).validated()


#: DiSparse's own settings (its config_nyuv2.py, config_cityscapes.py and config_taskonomy.py, and
#: its training scripts): the schedule of its from-scratch variants (static, dynamic), the
#: fine-tuning of its pre-trained variant (constant LR: its scheduler stays on an old optimiser),
#: and the batch its static variant scores with.
DISPARSE = {
    "nyuv2": {
        "scratch": TrainConfig(20000, 16, 1e-3, 5e-4, 4000, 0.5, 50),
        "pt": TrainConfig(1000, 16, 1e-5, 5e-4, eval_every=50),
        "scoring_batch": 16,
    },
    "cityscapes": {
        "scratch": TrainConfig(20000, 16, 1e-4, 5e-4, 4000, 0.5, 50),
        "pt": TrainConfig(1000, 16, 1e-5, 5e-4, eval_every=50),
        "scoring_batch": 16,
    },
    "taskonomy": {
        "scratch": TrainConfig(100000, 16, 1e-4, 5e-4, 12000, 0.3, 10000),
        "pt": TrainConfig(4000, 16, 1e-6, 5e-4, eval_every=10000),
        "scoring_batch": 4,
    },
}


def _same_schedule(actual: TrainConfig, expected: TrainConfig) -> bool:
    """Equal schedules; a learning rate that never decays within the run counts as constant
    whatever its nominal period."""

    def constant(c: TrainConfig) -> bool:
        return c.lr_gamma == 1.0 or c.lr_step >= c.iterations

    fields = ("iterations", "batch_size", "lr", "weight_decay", "eval_every")
    if any(getattr(actual, f) != pytest.approx(getattr(expected, f)) for f in fields):
        return False
    if constant(expected):
        return constant(actual)
    return (actual.lr_step, actual.lr_gamma) == (expected.lr_step, expected.lr_gamma)


@pytest.mark.parametrize("dataset", sorted(DISPARSE))
def test_disparse_variants_train_on_disparse_schedules_under_paper(
    dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``--protocol paper`` each DiSparse variant gets DiSparse's own hyperparameters on
    each dataset (the run's context, as :func:`cutlib.experiments.run` builds it); under
    ``fair``, and for CUT's own baselines, the profile's schedules are unchanged."""
    np.save(tmp_path / "semseg_prior_factor.npy", np.ones(17, np.float32))  # Taskonomy's weights
    monkeypatch.setattr(experiments, "read_index", lambda *args: None)  # no images needed here
    expected = DISPARSE[dataset]

    def context(method: str, protocol: str) -> RunContext:
        config = RunConfig(
            dataset, method, None, 0.9, "paper", protocol=protocol, data_root=str(tmp_path)
        )
        return RunContext(resolve(config.validated()), torch.device("cpu"), False, None)

    for method in ("disparse_static", "disparse_dynamic"):
        ctx = context(method, "paper")
        assert _same_schedule(ctx.schedule(), expected["scratch"]), method
    static = context("disparse_static", "paper")
    assert static.profile.scoring.batch_size == expected["scoring_batch"]
    dynamic = context("disparse_dynamic", "paper").profile.baselines.dynamic
    assert dynamic.update_at_start is True  # its masks change before the first step too
    pt = context("disparse_pt", "paper")
    assert _same_schedule(pt.schedule(), expected["pt"])
    assert pt.spec.planned_steps == expected["pt"].iterations  # the grid's plan too
    cut_profile = load_profile("paper", dataset)
    for method in ("disparse_static", "disparse_pt", "snip", "cut"):
        fair = context(method, "fair")
        assert fair.profile == cut_profile  # fair leaves every method on the CUT code's profile
    assert context("snip", "paper").profile == cut_profile
