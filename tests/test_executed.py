"""Executed notebooks fit to commit: the scrubber and the comparison of two executed copies."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from cutlib.executed import (
    differences,
    scrub,
    scrub_file,
    scrub_text,
    stale_cells,
    write_notebook,
)


def _cell(source: str, outputs: list[dict], tags: list[str] | None = None) -> dict:
    metadata: dict = {
        "execution": {"iopub.execute_input": "2026-12-05T13:02:42.106655Z"},
        "papermill": {
            "duration": 0.0146,
            "start_time": "2026-12-05T13:02:42.102790+00:00",
            "end_time": "2026-12-05T13:02:42.117400+00:00",
            "exception": False,
            "status": "completed",
        },
    }
    if tags:
        metadata["tags"] = tags
    return {"cell_type": "code", "source": source, "metadata": metadata, "outputs": outputs}


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _notebook(*cells: dict) -> dict:
    return {
        "metadata": {
            "papermill": {
                "parameters": {"profile": "quick"},
                "start_time": "2026-12-05T13:02:40",
                "duration": 18.2,
                "input_path": "/home/me/cutlib/notebooks/00_overview.ipynb",
                "environment_variables": {"HOME": "/home/me"},
            },
            "widgets": {"state": {"abc": {}}},
        },
        "cells": list(cells),
    }


def test_scrub_keeps_parameters_and_status_and_drops_times_paths_and_widget_state():
    notebook = scrub(_notebook(_cell("x = 1", [])))
    assert notebook["metadata"] == {"papermill": {"parameters": {"profile": "quick"}}}
    assert notebook["cells"][0]["metadata"] == {
        "papermill": {"exception": False, "status": "completed"}
    }


def test_scrub_text_replaces_addresses_root_and_durations():
    text = "<Styler at 0x7f7706708110> in /home/me/cutlib/results: made 6 runs in 129 s of run time"
    assert scrub_text(text, "/home/me/cutlib") == (
        "<Styler at 0x…> in ./results: made 6 runs in … s of run time"
    )
    # counts and numbers that are not durations stay
    kept = "300 scenes at 64x64; 2 seeds; Δ_MTL -2.98 %; κ = 0.1035"
    assert scrub_text(kept) == kept


def test_scrub_outputs_drops_progress_bars_log_lines_and_widgets_and_merges_streams():
    bar = "\rpretrain:   0%|          | 0/1000 [00:00<?, ?it/s]\rpretrain:  1%| | 1/1000"
    log = "W1205 13:10:27.686000 30150 torch/utils/cpp_extension.py:183] No CUDA runtime\n"
    widget = {
        "output_type": "display_data",
        "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "f00"}},
        "metadata": {},
    }
    plain = {
        "output_type": "execute_result",
        "data": {"text/plain": "<Styler at 0x7efb95516b10>", "text/html": "<table/>"},
        "metadata": {},
        "execution_count": 3,
    }
    cell = _cell(
        "train()",
        [
            _stream("stdout", "finished run A in 117.9 s\n"),
            _stream("stderr", bar),
            _stream("stderr", log),
            widget,
            _stream("stdout", "best loss 4.9029 at iteration 1000\n"),
            plain,
        ],
    )
    outputs = scrub(_notebook(cell))["cells"][0]["outputs"]
    assert outputs == [
        _stream("stdout", "finished run A in … s\nbest loss 4.9029 at iteration 1000\n"),
        plain | {"data": {"text/plain": "<Styler at 0x…>", "text/html": "<table/>"}},
    ]


def test_scrub_is_idempotent_and_leaves_its_input_alone():
    notebook = _notebook(_cell("print(1)", [_stream("stdout", "in 1.7 s\n")]))
    before = copy.deepcopy(notebook)
    once = scrub(notebook, "/home/me/cutlib")
    assert notebook == before
    assert scrub(once, "/home/me/cutlib") == once


def test_differences_finds_changed_outputs_and_sources_and_skips_volatile_cells():
    a = _notebook(
        _cell("x", [_stream("stdout", "1\n")]),
        _cell("latency()", [_stream("stdout", "2.1 ms\n")], tags=["volatile"]),
    )
    b = copy.deepcopy(a)
    b["cells"][1]["outputs"] = [_stream("stdout", "2.4 ms\n")]
    assert differences(a, b) == []
    b["cells"][0]["outputs"] = [_stream("stdout", "2\n")]
    assert differences(a, b) == ["cell 0: outputs differ"]
    b["cells"][1]["source"] = "latency(repeats=3)"
    assert differences(a, b) == ["cell 0: outputs differ", "cell 1: source differs"]
    assert differences(a, _notebook()) == ["2 cells against 0"]


def test_stale_cells_skips_the_injected_parameters_and_finds_edited_cells():
    source = {"cells": [{"source": "profile = 'quick'"}, {"source": "run()"}]}
    executed = {
        "cells": [
            {"source": "profile = 'quick'", "metadata": {}},
            {"source": "profile = 'smoke'", "metadata": {"tags": ["injected-parameters"]}},
            {"source": "run()", "metadata": {}},
        ]
    }
    assert stale_cells(executed, source) == []
    source["cells"][1]["source"] = "run(seed=1)"
    assert stale_cells(executed, source) == [1]


def test_scrub_file_relinks_markdown_to_the_copy_folder(tmp_path: Path) -> None:
    notebooks, executed = tmp_path / "notebooks", tmp_path / "results" / "executed"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "m.md").write_text("# m\n")
    executed.mkdir(parents=True)
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "see [m](../docs/m.md#part), [x](#y)"},
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print('[m](../docs/m.md)')",
            "outputs": [],
            "execution_count": None,
        },
    ]
    write_notebook(executed / "n.ipynb", {"cells": cells, "metadata": {}})
    scrub_file(executed / "n.ipynb", tmp_path, links_from=notebooks)
    markdown, code = json.loads((executed / "n.ipynb").read_text())["cells"]
    assert markdown["source"] == "see [m](../../docs/m.md#part), [x](#y)"
    assert (executed / "../../docs/m.md").resolve().is_file()
    assert code["source"] == cells[1]["source"]  # code is not touched
