"""The committed study (``results/study/``) rebuilds from its run records alone: notebook 07 on
the ``study`` profile, without the weights (``model_figures=False``), writes every table and
figure byte for byte as committed. Skipped while no record is committed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cutlib.io import project_root
from cutlib.reproduce import reproduce

STUDY = project_root() / "results" / "study"


@pytest.mark.slow
@pytest.mark.skipif(
    not (STUDY / "records").is_dir(), reason="no study run records are committed yet"
)
def test_the_study_rebuilds_identically_from_its_records(tmp_path: Path) -> None:
    shutil.copytree(STUDY / "records", tmp_path / "records")
    reproduce("study", only=["07"], out=tmp_path, parameters={"model_figures": False})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), (
        "rebuilding from the records trained a run: a record is missing"
    )
    for folder in ("tables", "figures"):
        committed = {p.name: p for p in (STUDY / folder).iterdir()}
        rebuilt = {p.name: p for p in (tmp_path / folder).iterdir()}
        assert sorted(rebuilt) == sorted(committed), folder
        changed = [n for n, p in rebuilt.items() if p.read_bytes() != committed[n].read_bytes()]
        assert not changed, f"{folder} differ from the committed study: {changed}"
