"""Real-browser tests, in headless Chromium driven by Selenium.

- The companion website (``python -m cutlib.book``), served on localhost: every image loads, the
  console has no error and nothing is requested from another host (the site works offline).
- JupyterLab on a temporary folder: the first cells of ``00_overview.ipynb`` run and show the
  pipeline figure; the live knobs of :mod:`cutlib.knobs` redraw when the κ slider and the rule
  selector move. Their timings go to ``build/screenshots/knob_timings.json`` (reported, never
  asserted).

Screenshots go to ``build/screenshots/``. The module skips, with its reason, without Chromium,
chromedriver, Selenium or jupyter-book (``pip install -e '.[book]'``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
WIDTH = 1280
#: The site pages checked: name, path in the site, the executed notebook it needs (if any).
PAGES = [
    ("index", "index.html", None),
    ("00_overview", "results/executed/00_overview.html", "00_overview.ipynb"),
    ("05_finetune", "results/executed/05_finetune.html", "05_finetune.ipynb"),
]
#: The knobs notebook's cells: the quick profile's model at full size with random scores (the
#: same redraw cost as real ones), and no pyplot: the widget renders its own PNG.
KNOB_CELLS = [
    """import torch, cutlib as cl
from cutlib.knobs import MaskSetting, explore
from cutlib.pruning.masks import prunable_weights
info = cl.SYNTHETIC_DATASETS["synth-nyuv2"]
net = cl.SceneNet(info.tasks, **cl.load_profile("quick", info.name).model.kwargs())
layers = cl.reporting.layer_table(net)
generator = torch.Generator().manual_seed(0)
scores = {t: {w.name: torch.rand(w.weight.shape, generator=generator)
              for w in prunable_weights(net) if w.owner in (cl.BACKBONE, t)}
          for t in net.task_names}""",
    "default, knobs = explore(scores, layers, list(net.task_names), MaskSetting(0.1)); knobs",
]


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "browser tests need chromium and chromedriver: apt-get install chromium-driver"
    for module in ("selenium", "jupyter_book"):
        if importlib.util.find_spec(module) is None:
            return f"browser tests need {module}: pip install -e '.[book]'"
    return None


if (_reason := _missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _screenshot(driver: webdriver.Chrome, name: str, full_page: bool = True) -> None:
    """Save the page (its whole height, up to 16,000 px, when ``full_page``) at width 1280."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, min(int(height), 16_000))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(WIDTH, 1000)


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    """Headless Chromium, its console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(shutil.which("chromedriver")))
    browser = webdriver.Chrome(options=options, service=service)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The website built into a temporary folder and served on localhost: its address."""
    from cutlib.book import build

    out = tmp_path_factory.mktemp("book") / "html"
    start = time.perf_counter()
    assert build(out) == 0
    print(f"book built in {time.perf_counter() - start:.1f} s")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.mark.parametrize(("name", "path", "notebook"), PAGES, ids=[p[0] for p in PAGES])
def test_site_page(
    driver: webdriver.Chrome, site: str, name: str, path: str, notebook: str | None
) -> None:
    if notebook and not (ROOT / "results" / "executed" / notebook).exists():
        pytest.skip(f"results/executed/{notebook} is missing: run make reproduce first")
    driver.get_log("browser")  # forget earlier pages' messages
    driver.get(f"{site}/{path}")
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # lazy images
    unloaded = "return [...document.images].filter(i => !i.complete).map(i => i.src)"
    wait.until(lambda d: not d.execute_script(unloaded))
    broken = driver.execute_script(
        "return [...document.images].filter(i => i.naturalWidth === 0).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"
    images = driver.execute_script("return document.images.length")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    requests = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    remote = [url for url in requests if not url.startswith((site, "data:", "blob:"))]
    assert not remote, f"requests off localhost: {remote}"
    _screenshot(driver, name)
    print(f"{name}: {images} images, {len(requests)} local requests")


class Lab(NamedTuple):
    """A running JupyterLab: its address and token."""

    url: str
    token: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a temporary folder holding ``00_overview.ipynb`` and the knobs notebook."""
    import nbformat

    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "00_overview.ipynb", root)
    knobs = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in KNOB_CELLS])
    knobs.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(knobs, root / "knobs.ipynb")
    token, port = secrets.token_hex(16), _free_port()
    env = os.environ | {
        "CUTLIB_RESULTS": str(root / "results"),  # the notebook's figures stay in the folder
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),  # no user settings or workspaces
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".jupyter" / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".jupyter" / "lab" / "workspaces"),
    }
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}"]
    command += ["--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root"]
    command += [f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (
                root / "server.log"
            ).read_text()
            time.sleep(0.5)
    yield Lab(base, token)
    request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
    urllib.request.urlopen(request, timeout=10)  # stops the kernels too
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _open_notebook(driver: webdriver.Chrome, lab: Lab, notebook: str) -> WebDriverWait:
    """Open ``notebook`` in JupyterLab, in a workspace of its own (nothing else reopened), and
    wait until it is the current tab and its kernel is idle; a patient wait."""
    workspace = Path(notebook).stem
    driver.get(f"{lab.url}/lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
    wait = WebDriverWait(driver, 180, poll_frequency=0.2)
    wait.until(
        lambda d: d.execute_script(
            "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            "const k = w && w.sessionContext && w.sessionContext.session"
            " && w.sessionContext.session.kernel;"
            "return !!k && k.status === 'idle' && w.context.isReady"
            " && w.context.path === arguments[0]",
            notebook,
        )
    )
    return wait


def test_lab_runs_overview(driver: webdriver.Chrome, lab: Lab) -> None:
    wait = _open_notebook(driver, lab, "00_overview.ipynb")
    start = time.perf_counter()
    # run every cell above the one with id 7 (it builds the paper's model): ids 1, 3 and 5
    driver.execute_script(
        "const nb = window.jupyterapp.shell.currentWidget.content;"
        "nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === '7');"
        "return window.jupyterapp.commands.execute('notebook:run-all-above');"
    )
    figure = (
        "const nb = window.jupyterapp.shell.currentWidget.content;"
        "const cell = nb.widgets.find(c => c.model.id === '5');"
        "const img = cell.node.querySelector('.jp-OutputArea-output img');"
        "return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : 0"
    )
    width = wait.until(lambda d: d.execute_script(figure))
    print(f"00_overview: cells 1, 3, 5 ran in {time.perf_counter() - start:.1f} s")
    errors = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type*=error]")
    assert not errors, [e.text for e in errors]
    assert width > 100
    driver.execute_script(
        "window.jupyterapp.shell.currentWidget.content.widgets"
        ".find(c => c.model.id === '5').node.scrollIntoView()"
    )
    _screenshot(driver, "jupyterlab_00", full_page=False)


def _move(driver: webdriver.Chrome, act: Any) -> dict[str, Any]:
    """Do ``act`` (a knob move) and wait until the status label reads a new text and a new figure
    has loaded: the label, the kernel's redraw time and the browser's wall time (seconds)."""
    label = driver.find_element(By.CSS_SELECTOR, ".cutlib-knob-status")
    before = label.text
    driver.execute_script(  # mark the figure shown now, if any
        "for (const img of arguments[0].parentElement.querySelectorAll('img')) img.old = true",
        label,
    )
    new_figure = (
        "const label = arguments[0], before = arguments[1];"
        "const img = [...label.parentElement.querySelectorAll('img')].find(i => !i.old);"
        "return label.textContent !== before && !!img && img.complete && img.naturalWidth > 0"
    )
    start = time.perf_counter()
    act()
    WebDriverWait(driver, 60, poll_frequency=0.02).until(
        lambda d: d.execute_script(new_figure, label, before)
    )
    browser = time.perf_counter() - start
    text = label.text
    kernel = re.search(r"redrawn in ([\d.]+) s", text)
    assert kernel, text
    return {"label": text, "kernel_s": float(kernel.group(1)), "browser_s": round(browser, 3)}


def test_lab_knobs_redraw(driver: webdriver.Chrome, lab: Lab) -> None:
    wait = _open_notebook(driver, lab, "knobs.ipynb")
    driver.execute_script("return window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cutlib-knob-status"))
    label = driver.find_element(By.CSS_SELECTOR, ".cutlib-knob-status")
    assert label.text == "move a knob to redraw"
    handle = driver.find_element(By.CSS_SELECTOR, ".widget-hslider .noUi-handle")
    select = Select(driver.find_element(By.CSS_SELECTOR, ".widget-dropdown select"))
    timings = {
        "κ one step right": _move(driver, lambda: handle.send_keys(Keys.ARROW_RIGHT)),
        "rule union": _move(driver, lambda: select.select_by_visible_text("union")),
    }
    assert "union" in timings["rule union"]["label"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(timings, indent=2, ensure_ascii=False) + "\n"
    (SCREENSHOTS / "knob_timings.json").write_text(text, encoding="utf-8")
    print(text, end="")
    _screenshot(driver, "jupyterlab_knobs", full_page=False)
