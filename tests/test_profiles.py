"""Profiles are typed and validated when loaded: a misspelt key stops the load with one line that
names it and the valid keys; a run's identity is the profile as written."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from cutlib.profiles import (
    PLANNING_KEYS,
    PROFILE_NAMES,
    ProfileError,
    load_profile,
    method_settings,
    run_settings,
)
from cutlib.profiles.schema import parse_profile
from cutlib.train import TrainConfig


def _yaml(name: str) -> dict:
    return yaml.safe_load(resources.files("cutlib.profiles").joinpath(f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_and_dataset_variant_loads(name: str) -> None:
    datasets = [None, *(_yaml(name).get("datasets") or {})]
    for dataset in datasets:
        profile = load_profile(name, dataset)
        assert profile.name == name and isinstance(profile.finetune, TrainConfig)
        assert isinstance(profile.model.aspp_rates, tuple)


def test_a_misspelt_key_is_named_with_the_valid_keys() -> None:
    source = _yaml("quick")
    source["pretrain"]["lr_stpe"] = source["pretrain"].pop("lr_step")
    with pytest.raises(ProfileError) as error:
        parse_profile(source, "quick")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("profile 'quick': unknown key 'pretrain.lr_stpe'; valid keys: ")
    assert "lr_step" in message and "rewind_iteration" in message


def test_a_misspelt_section_a_missing_key_and_a_wrong_type_are_refused() -> None:
    source = _yaml("smoke")
    source["finetuning"] = source.pop("finetune")
    with pytest.raises(ProfileError, match="unknown key 'finetuning'; valid keys: description"):
        parse_profile(source, "smoke")
    source = _yaml("smoke")
    del source["scoring"]["batches"]
    with pytest.raises(ProfileError, match="missing key 'scoring.batches'"):
        parse_profile(source, "smoke")
    source = _yaml("smoke")
    source["pretrain"]["iterations"] = "many"
    with pytest.raises(ProfileError, match="'pretrain.iterations' must be int, got 'many'"):
        parse_profile(source, "smoke")
    with pytest.raises(ProfileError, match="'data.augment' must be bool, got 1"):
        load_profile("smoke").override({"data": {"augment": 1}})


def test_a_dataset_override_with_a_bad_key_is_caught_for_that_dataset() -> None:
    source = _yaml("paper")
    base = {k: v for k, v in source.items() if k != "datasets"}
    changes = {"scoring": {"bathces": 3}}
    with pytest.raises(
        ProfileError, match=r"profile 'paper' \(nyuv2\): unknown key 'scoring.bathces'"
    ):
        parse_profile(
            {**base, **changes, "scoring": {**base["scoring"], **changes["scoring"]}},
            "paper",
            "nyuv2",
        )


def test_a_runs_identity_is_the_profile_as_written_without_planning_entries() -> None:
    source = _yaml("paper")
    overrides = source.pop("datasets")["cityscapes"]
    expected = {k: v for k, v in source.items() if k not in PLANNING_KEYS}
    for section, values in overrides.items():  # the dataset's entries replace the base ones
        if section in PLANNING_KEYS:
            continue
        if isinstance(values, dict):
            expected[section] = _merged(expected.get(section, {}), values)
        else:
            expected[section] = values
    expected["baselines"].pop("notebook", None)
    assert run_settings(load_profile("paper", "cityscapes")) == expected


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


def test_method_settings_merge_a_methods_own_sections_under_paper_only() -> None:
    paper = load_profile("paper", "nyuv2")
    own = _yaml("paper")["baselines"]["paper_protocol"]["disparse_pt"]["finetune"]
    merged = method_settings(paper, "disparse_pt", "paper")
    assert merged.finetune.weight_decay == own["weight_decay"] != paper.finetune.weight_decay
    assert merged.finetune.lr == own["lr"]
    assert merged.pretrain == paper.pretrain
    assert method_settings(paper, "disparse_pt", "fair") is paper


def test_an_extending_profile_is_its_base_with_its_own_entries_merged() -> None:
    quick, study = load_profile("quick"), load_profile("study")
    assert _yaml("study")["extends"] == "quick"
    for section in ("data", "model", "pretrain", "finetune", "scoring", "baselines", "eval"):
        assert getattr(study, section) == getattr(quick, section), section
    assert study.seeds == [0, 1, 2, 3, 4] and quick.seeds == [0]
    assert study.grid != quick.grid and study.description != quick.description
    assert "extends" not in study.source


def test_extending_in_a_circle_or_an_unknown_base_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cutlib.profiles as profiles

    files = {"smoke": {"extends": "quick"}, "quick": {"extends": "smoke"}, "full": {"extends": "x"}}
    monkeypatch.setattr(profiles, "_read", lambda name: dict(files[name]))
    with pytest.raises(ValueError, match="'quick' extends 'smoke', which extends it back"):
        profiles._source("smoke")
    with pytest.raises(ValueError, match="unknown profile 'x'"):
        profiles._source("full")


def test_the_regime_profile_is_shaped_and_scheduled_like_the_paper() -> None:
    """The ``regime`` profile's claims about itself: the heads hold at least two thirds of the
    deployed prunable weights on every selection of its grid (the paper's DeepLab-ResNet34: 69–85
    %), its fine-tuning has about 1 % of its pre-training's lr·steps (the reference code: 0.9 %),
    and its pre-training has validation points in the last quarter for the convergence check."""
    from cutlib.data import dataset_info
    from cutlib.grid import grid_cells
    from cutlib.models import SceneNet
    from cutlib.pruning.masks import weights_by_owner

    regime = load_profile("regime")
    selections = {(c.config.dataset, c.config.tasks) for c in grid_cells("regime", seeds=[0])}
    for dataset, tasks in selections:
        if len(tasks) == len(dataset_info(dataset).tasks):
            continue  # the pre-training
        net = SceneNet(dataset_info(dataset).tasks, **regime.model.kwargs()).keep_tasks(tasks)
        counts = weights_by_owner(net)
        heads = sum(counts[t] for t in tasks)
        assert heads / (heads + counts["backbone"]) >= 2 / 3, (dataset, tasks)
    ratio = regime.finetune.learning_rate_area() / regime.pretrain.learning_rate_area()
    assert 0.008 <= ratio <= 0.012
    assert regime.pretrain.iterations // regime.pretrain.eval_every >= 8
    quick = load_profile("quick")
    assert quick.finetune.learning_rate_area() / quick.pretrain.learning_rate_area() > 0.04
