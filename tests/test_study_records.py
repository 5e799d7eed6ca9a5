"""The committed studies (``results/study/``, ``results/regime/``) rebuild from their run records
alone: notebook 07 on the study's profile, without the weights (``model_figures=False``), writes
every table and figure byte for byte as committed. Skipped while a study has no records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cutlib.io import project_root
from cutlib.reproduce import reproduce

STUDIES = ("study", "regime")


@pytest.mark.slow
@pytest.mark.parametrize("profile", STUDIES)
def test_the_study_rebuilds_identically_from_its_records(profile: str, tmp_path: Path) -> None:
    study = project_root() / "results" / profile
    if not (study / "records").is_dir():
        pytest.skip(f"no {profile} run records are committed yet")
    shutil.copytree(study / "records", tmp_path / "records")
    reproduce(profile, only=["07"], out=tmp_path, parameters={"model_figures": False})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), (
        "rebuilding from the records trained a run: a record is missing"
    )
    for folder in ("tables", "figures"):
        committed = {p.name: p for p in (study / folder).iterdir()}
        rebuilt = {p.name: p for p in (tmp_path / folder).iterdir()}
        assert sorted(rebuilt) == sorted(committed), folder
        changed = [n for n, p in rebuilt.items() if p.read_bytes() != committed[n].read_bytes()]
        assert not changed, f"{folder} differ from the committed {profile} study: {changed}"
