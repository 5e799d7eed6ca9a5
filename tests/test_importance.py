"""Per-task importance: Taylor scores against an independent reference, the model is left
untouched, sub-model keys, and the magnitude / random criteria."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from cutlib.losses import task_loss
from cutlib.models import SceneNet
from cutlib.pruning.importance import scoring_batches, task_importance
from cutlib.pruning.masks import apply_masks, is_masked, prunable_weights
from cutlib.tasks import TaskSpec

TASKS = (TaskSpec("seg", "seg", 3, ignore_value=255), TaskSpec("depth", "depth", 1))
STEM = "backbone.stem.0.weight"


def _net(dropout: float = 0.0) -> SceneNet:
    torch.manual_seed(0)
    net = SceneNet(TASKS, "resnet18", 0.125, 8, (1, 2, 3, 4), dropout=dropout)
    with torch.no_grad():  # a non-trivial "pre-trained" state: BN statistics and affines
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.01, 0.01)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return net


def _batches(n: int = 2, size: int = 16) -> list[dict[str, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(n):
        seg = torch.randint(0, 3, (2, size, size), generator=generator)
        seg[:, :2] = 255  # some ignored pixels
        depth = torch.rand(2, 1, size, size, generator=generator) + 0.5
        depth[:, :, -2:] = 0  # some invalid depths
        image = torch.randn(2, 3, size, size, generator=generator)
        batches.append({"image": image, "seg": seg, "depth": depth})
    return batches


def _owned(net: SceneNet, task: str) -> list[str]:
    return [w.name for w in prunable_weights(net) if w.owner in ("backbone", task)]


def _reference_taylor(
    net: SceneNet, batches: list[dict[str, Tensor]], task: str, train_mode: bool
) -> dict[str, Tensor]:
    """Σ_b |w · ∂L_t/∂w|, one forward per (batch, task), on a copy in the given mode."""
    ref = copy.deepcopy(net).train(train_mode)
    spec = next(t for t in TASKS if t.name == task)
    params = dict(ref.named_parameters())
    names = _owned(net, task)
    totals = {n: torch.zeros_like(params[n]) for n in names}
    for batch in batches:
        loss = task_loss(spec, ref(batch["image"])[task], batch[task])
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        for name, grad in zip(names, grads, strict=True):
            totals[name] += (params[name].detach() * grad).abs()
    return totals


def _snapshot(net: SceneNet) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_same_state(net: SceneNet, before: dict[str, Tensor]) -> None:
    after = net.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), f"{key} changed"


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_taylor_matches_an_independent_reference(bn_mode: str) -> None:
    net, batches = _net(), _batches()
    scores = task_importance(net, batches, ["seg", "depth"], "taylor", bn_mode=bn_mode)  # type: ignore[arg-type]
    assert set(scores) == {"seg", "depth"}
    for task in ("seg", "depth"):
        expected = _reference_taylor(net, batches, task, train_mode=bn_mode == "train")
        assert list(scores[task]) == list(expected)
        for name, value in expected.items():
            assert value.abs().max() > 0, f"reference score of {name} is all zero"
            got = scores[task][name]
            assert got.device.type == "cpu" and got.shape == value.shape
            torch.testing.assert_close(
                got, value, rtol=1e-6, atol=1e-6 * float(value.abs().max()), msg=name
            )


def test_train_and_eval_modes_score_differently() -> None:
    net, batches = _net(), _batches()
    train = task_importance(net, batches, ["depth"], bn_mode="train")["depth"]
    evals = task_importance(net, batches, ["depth"], bn_mode="eval")["depth"]
    assert not torch.allclose(train[STEM], evals[STEM])


def test_taylor_is_a_sum_over_batches_of_per_batch_scores() -> None:
    net, batches = _net(), _batches()
    both = task_importance(net, batches[:2], ["seg"], bn_mode="eval")["seg"]
    first = task_importance(net, batches[:1], ["seg"], bn_mode="eval")["seg"]
    second = task_importance(net, batches[1:2], ["seg"], bn_mode="eval")["seg"]
    for name in both:
        torch.testing.assert_close(both[name], first[name] + second[name])


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_scoring_leaves_the_model_untouched(bn_mode: str) -> None:
    net = _net(dropout=0.5).train()  # train mode: BN statistics would move if it were used
    before = _snapshot(net)
    task_importance(net, _batches(), ["seg", "depth"], bn_mode=bn_mode)  # type: ignore[arg-type]
    _assert_same_state(net, before)
    assert net.training
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    net.eval()
    task_importance(net, _batches(), ["depth"], bn_mode=bn_mode)  # type: ignore[arg-type]
    _assert_same_state(net, before)
    assert not net.training


@pytest.mark.parametrize("criterion", ["taylor", "magnitude", "random"])
def test_keys_are_backbone_plus_own_head_weights(criterion: str) -> None:
    net = _net()
    scores = task_importance(net, _batches(1), ["seg", "depth"], criterion)  # type: ignore[arg-type]
    weights = {w.name: w.weight for w in prunable_weights(net)}
    for task, other in (("seg", "depth"), ("depth", "seg")):
        keys = set(scores[task])
        assert keys == set(_owned(net, task))
        assert any(k.startswith("backbone.") for k in keys)
        assert any(k.startswith(f"heads.{task}.") for k in keys)
        assert not any(k.startswith(f"heads.{other}.") for k in keys)
        assert all(k.endswith(".weight") for k in keys)
        assert not any(k.endswith(".bias") for k in keys)
        # BatchNorm weights are not prunable: downsample.1 and bn1/bn2 are BatchNorm2d
        assert not any(".bn" in k or "downsample.1" in k or "stem.1" in k for k in keys)
        for name, value in scores[task].items():
            assert value.shape == weights[name].shape
            assert (value >= 0).all()


def test_magnitude_is_the_absolute_weight() -> None:
    net = _net()
    scores = task_importance(net, [], ["seg"], "magnitude")["seg"]
    params = dict(net.named_parameters())
    for name, value in scores.items():
        assert torch.equal(value, params[name].detach().abs())


def test_random_is_seeded() -> None:
    net = _net()
    a = task_importance(net, [], ["seg", "depth"], "random", seed=5)
    b = task_importance(net, [], ["seg", "depth"], "random", seed=5)
    c = task_importance(net, [], ["seg", "depth"], "random", seed=6)
    for task in a:
        for name in a[task]:
            assert torch.equal(a[task][name], b[task][name])
            assert not torch.equal(a[task][name], c[task][name])
            assert ((a[task][name] >= 0) & (a[task][name] < 1)).all()


def test_task_specs_are_accepted_like_names() -> None:
    net, batches = _net(), _batches(1)
    by_name = task_importance(net, batches, ["depth"], bn_mode="eval")
    by_spec = task_importance(net, batches, [TASKS[1]], bn_mode="eval")
    assert list(by_name) == list(by_spec) == ["depth"]
    for name in by_name["depth"]:
        assert torch.equal(by_name["depth"][name], by_spec["depth"][name])


def _stem_masked_net() -> tuple[SceneNet, Tensor]:
    net = _net()
    mask = torch.ones_like(net.backbone.stem[0].weight, dtype=torch.bool)
    mask[::2] = False
    apply_masks(net, {STEM: mask})
    return net, mask


def test_taylor_scores_a_freshly_masked_model() -> None:
    net, mask = _stem_masked_net()
    scores = task_importance(net, _batches(1), ["seg"], bn_mode="eval")["seg"]
    assert (scores[STEM][~mask] == 0).all()


def test_masked_weights_score_zero_and_keep_their_masks() -> None:
    net, mask = _stem_masked_net()
    with torch.no_grad():  # recompute the masked weight without a graph (sidesteps the bug above)
        net.eval()(_batches(1)[0]["image"])
    scores = task_importance(net, _batches(1), ["seg"], bn_mode="eval")["seg"]
    assert (scores[STEM][~mask] == 0).all()
    assert (scores[STEM][mask] > 0).any()
    assert is_masked(net.backbone.stem[0])
    assert torch.equal(net.backbone.stem[0].weight_mask, mask.float())


def test_invalid_arguments_raise() -> None:
    net, batches = _net(), _batches(1)
    with pytest.raises(ValueError, match="cannot score task 'sn'"):
        task_importance(net, batches, ["sn"])
    with pytest.raises(ValueError, match="unknown criterion 'snip'"):
        task_importance(net, batches, ["seg"], "snip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown bn_mode 'frozen'"):
        task_importance(net, batches, ["seg"], bn_mode="frozen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one task"):
        task_importance(net, batches, [])


def test_taylor_without_batches_raises() -> None:
    net = _net()
    before = _snapshot(net)
    with pytest.raises(ValueError, match="at least one batch"):
        task_importance(net, [], ["seg"], "taylor")
    with pytest.raises(ValueError, match="at least one batch"):
        task_importance(net, iter(()), ["seg", "depth"], "taylor", bn_mode="eval")
    _assert_same_state(net, before)


class _Indexed(torch.utils.data.Dataset):
    """Samples that carry their own index, to see which ones a batch holds."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"index": torch.tensor(i)}


def test_scoring_batches_are_seeded_and_cycle_through_a_short_split() -> None:
    data = _Indexed()
    first = [b["index"].tolist() for b in scoring_batches(data, 4, 5, seed=3)]
    again = [b["index"].tolist() for b in scoring_batches(data, 4, 5, seed=3)]
    other = [b["index"].tolist() for b in scoring_batches(data, 4, 5, seed=4)]
    assert first == again and first != other
    assert all(len(b) == 4 for b in first)  # drop_last: 2 full batches per pass, then cycle
    assert len(set(first[0] + first[1])) == 8  # one pass draws without replacement


def test_scoring_batches_of_a_split_smaller_than_a_batch_and_zero_batches() -> None:
    batches = scoring_batches(_Indexed(), 11, 3)  # 10 samples: each batch is the whole split
    assert [sorted(b["index"].tolist()) for b in batches] == [list(range(10))] * 3
    with pytest.raises(ValueError, match="empty"):
        scoring_batches(torch.utils.data.Subset(_Indexed(), []), 2, 1)
    with pytest.raises(ValueError, match="at least 1"):
        scoring_batches(_Indexed(), 2, 0)
