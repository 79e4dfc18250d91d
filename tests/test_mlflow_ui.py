"""The MLflow UI, as a user sees it: two tiny real training runs are logged through the project's
Tracker into a private store as the train stage logs them (losses, sample grids, the generator as
an MLflow model), each with an evaluation written onto it as the evaluate stage writes it (canned
FID numbers and curve: the stage itself is tested in test_tracking.py); `mlflow ui` serves that
store on 127.0.0.1 (as `make ui` does), and headless Chromium (Debian's `chromium` package) renders
the single-page app. From the rendered DOM we check that the experiment opens in the model-training
view (not the GenAI one) and lists one row per model with its FID, that each run's page shows its
params, final losses and FID, a loss chart and its logged generator, and that a run's artifacts show
the sample grids with one opened as an image; a screenshot of that view must be a real picture.
Skips where Chromium is not installed (.ci/run installs it)."""
from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from conftest import fake_processed, tiny_run

pytestmark = pytest.mark.slow

EXPERIMENT = "ganrepro-quick"  # Tracker names it ganrepro-<profile>
RUNS = {"experiment": "0.0002", "experiment_lr1e-4": "0.0001"}  # run name -> learning rate as logged
FIDS = {"experiment": 41.5, "experiment_lr1e-4": 87.25}  # run name -> its (canned) FID
FID = "fid.digit_classifier"
CHROMIUM_TIMEOUT_S = 120
SERVER_START_S = 60
WINDOW = (1400, 1000)
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never via a proxy


# ------------------------------------------------------------------ helpers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """End a process started in its own session, and everything it started, TERM then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = SERVER_START_S) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with DIRECT.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow ui did not answer {url} within {timeout_s} s:\n{log.read_text()[-3000:]}")


def chromium(binary: str, profile: Path, *args: str, window: tuple[int, int] = WINDOW) -> subprocess.CompletedProcess:
    """Run headless Chromium once, offline but for 127.0.0.1, killing its whole tree on timeout.

    Every frame is drawn in full before the next (--run-all-compositor-stages-before-draw): without
    it the charts, which render when scrolled into view, came up in 1 of 3 tries under virtual time."""
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--run-all-compositor-stages-before-draw",
        f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop(proc, grace_s=5)
        pytest.fail(f"chromium took over {CHROMIUM_TIMEOUT_S} s: {' '.join(args)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def page_text(dom: str) -> str:
    """What a reader sees: the DOM without scripts, styles and tags, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def run_links(dom: str) -> dict[str, str]:
    """Run links rendered in the runs table: {run_id: the run name shown as the link's text}."""
    pattern = r'href="#/experiments/\d+/runs/([0-9a-f]{32})"[^>]*>(?:\s*<[^>]+>)*\s*([^<]+?)\s*<'
    return {run_id: html.unescape(name) for run_id, name in re.findall(pattern, dom)}


def images(dom: str) -> list[dict[str, str]]:
    """The attributes of every <img> in the DOM."""
    return [{k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag)}
            for tag in re.findall(r"<img\b[^>]*>", dom)]


def shows_pair(text: str, key: str, value: str) -> bool:
    """True when `key` is followed by `value` as whole words, as in a rendered two-column table row."""
    return re.search(rf"(?<!\S){re.escape(key)} {re.escape(value)}(?!\S)", text) is not None


def js_number(x: float) -> str:
    """A float as the UI's JavaScript prints it (shortest round trip, no trailing .0)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def chromium_bin() -> str:
    """Debian's chromium, installed by the set-up (.ci/run), never by the test."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """Two real tiny training runs logged as the train stage logs them, into a private store."""
    root = tmp_path_factory.mktemp("mlflow-ui")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANREPRO_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        import pandas as pd
        from mlflow import MlflowClient

        from ganrepro import paths
        from ganrepro.models import export
        from ganrepro.tracking import EvaluationTracker, Tracker, run_tags
        from ganrepro.training.checkpoint import load_checkpoint
        from ganrepro.training.loop import train

        for name, lr in RUNS.items():
            out_dir, cfg = root / "runs" / name, tiny_run(name=name, steps=3, lr_g=float(lr), lr_d=float(lr))
            with Tracker(name, stage="train", profile="quick", tags=run_tags(cfg)) as tracker:
                _, history = train(cfg, fake_processed(), out_dir, tracker)
                tracker.log_generator(export.from_checkpoint(out_dir / "checkpoint.pt", 1, 10))
            fid = FIDS[name]
            results = {"fid": {"digit_classifier": {"value": fid, "protocol": {"dims": 128}}}}
            with EvaluationTracker(load_checkpoint(out_dir / "checkpoint.pt")) as evaluation:
                evaluation.log_evaluation(results, pd.DataFrame({"step": [1, 2, 3], "fid_digit_classifier": [
                    3 * fid, 2 * fid, fid]}))
            grids = sorted(p.name for p in (out_dir / "grids").glob("*.png"))
            runs[name] = {"id": tracker.run_id, "history": history, "grids": grids}
        uri = paths.tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        for run in runs.values():
            outputs = client.get_run(run["id"]).outputs.model_outputs  # the logged generator
            run["model_id"] = outputs[0].model_id if outputs else None
    assert uri == f"sqlite:///{root / 'mlflow.db'}"
    return {"root": root, "uri": uri, "experiment_id": experiment_id, "runs": runs}


@pytest.fixture(scope="module")
def ui(chromium_bin, store) -> Iterator[str]:
    """`mlflow ui` on the store (as `make ui` runs it) on 127.0.0.1 at a free port; its base URL.
    Always stopped after. Asks for chromium_bin first so a machine without it skips before training."""
    root, port = store["root"], free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANREPRO_ROOT")}
    env.update(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    log = root / "mlflow-ui.log"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store["uri"],
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/health", proc, log)
        yield base
    finally:
        stop(proc)


class Browser:
    """Headless Chromium with one private profile: rendered DOMs and screenshots of the UI."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir = binary, workdir
        self.profile = workdir / "profile"

    def dump(self, url: str, needles: list[str], attempts: int = 3, window: tuple[int, int] = WINDOW) -> str:
        """The DOM rendered at `url`, tried again (waiting longer) while the app has not shown `needles`."""
        dom = ""
        for attempt in range(1, attempts + 1):
            budget = f"--virtual-time-budget={20000 * attempt}"
            done = chromium(self.binary, self.profile, budget, "--dump-dom", url, window=window)
            assert done.returncode == 0, f"chromium failed on {url}:\n{done.stderr[-3000:]}"
            dom = done.stdout
            if all(n in page_text(dom) for n in needles):
                break
        return dom

    def screenshot(self, url: str, name: str) -> Path:
        """A PNG of the page at `url` as rendered in a WINDOW-sized viewport."""
        shot = self.workdir / name
        done = chromium(self.binary, self.profile, "--virtual-time-budget=20000", f"--screenshot={shot}", url)
        assert done.returncode == 0 and shot.is_file(), f"no screenshot of {url}:\n{done.stderr[-3000:]}"
        return shot


@pytest.fixture(scope="module")
def browser(chromium_bin, tmp_path_factory) -> Browser:
    return Browser(chromium_bin, tmp_path_factory.mktemp("chromium"))


# ------------------------------------------------------------------ tests
ML_VIEW = "workflowType=machine_learning"  # the UI's "Model training" view (docs/mlflow.md)


def test_the_experiment_opens_in_the_model_training_view(ui, store, browser):
    """The experiment's link as docs/mlflow.md gives it lands on its training runs, not on the GenAI
    overview of traces. (MLflow 3.17's UI picks the view from its global "GenAI | Model training"
    switch, default GenAI, or this URL parameter; the experiment's `mlflow.experimentKind` tag,
    which the Tracker sets to the model-training kind, is not consulted by this version.)"""
    from mlflow import MlflowClient

    kind = MlflowClient(tracking_uri=store["uri"]).get_experiment(store["experiment_id"]).tags
    assert kind.get("mlflow.experimentKind") == "custom_model_development"
    url = f"{ui}/#/experiments/{store['experiment_id']}?{ML_VIEW}"
    dom = browser.dump(url, ["Model registry", *RUNS])
    text = page_text(dom)
    assert "Runs Models Traces Model registry" in text, f"{url} is not the model-training view:\n{text[:2000]}"
    assert not [w for w in ("Observability", "Token Usage", "Prompts & versions") if w in text], text[:2000]
    assert set(run_links(dom).values()) == set(RUNS), f"{url} does not list the runs:\n{text[:2000]}"


def test_experiment_lists_the_runs(ui, store, browser):
    """The experiment's runs page renders one link per run, named as the stage named it: one row per
    trained model, evaluation included (no `-eval` rows)."""
    url = f"{ui}/#/experiments/{store['experiment_id']}/runs"
    dom = browser.dump(url, list(RUNS))
    text = page_text(dom)
    assert EXPERIMENT in text, f"{url} does not show the experiment:\n{text[:2000]}"
    expected = {r["id"]: name for name, r in store["runs"].items()}
    assert run_links(dom) == expected, f"{url} shows other runs:\n{text[:2000]}"
    assert f"{len(RUNS)} matching runs" in text and "-eval" not in text


def test_the_models_view_sorts_the_runs_by_fid_beside_their_learning_rate(ui, store, browser):
    """docs/mlflow.md's table (the shared view the evaluation keeps): one row per model, best FID first,
    with its FID, learning rate and logged generator."""
    url = f"{ui}/#/experiments/{store['experiment_id']}/runs?viewStateShareKey=models&{ML_VIEW}"
    dom = browser.dump(url, [FID, "lr_g", *RUNS])
    text = page_text(dom)
    assert f"Sort: {FID}" in text and re.search(r'col-id="metrics\.`fid\.digit_classifier`"', dom), text[:2000]
    best_first = sorted(RUNS, key=FIDS.get)
    assert list(run_links(dom).values()) == best_first, f"{url} is not sorted by FID:\n{text[:2000]}"
    rows = re.findall(r"generator (\S+) (\S+)", text)  # per row: Models, then FID and lr_g
    expected = [{js_number(FIDS[n]), RUNS[n]} for n in best_first]
    assert [set(r) for r in rows] == expected, f"{url}: {rows}\n{text[:2000]}"


@pytest.mark.parametrize("name", list(RUNS))
def test_run_page_shows_params_metrics_fid_and_the_generator(ui, store, browser, name):
    """Each run's overview shows its params (the lr it trained with), its last logged losses, the
    FID evaluation wrote onto it, and its logged generator."""
    run = store["runs"][name]
    url = f"{ui}/#/experiments/{store['experiment_id']}/runs/{run['id']}"
    text = page_text(browser.dump(url, ["Parameters", "Metrics", "lr_g", FID, "Logged models"]))
    last = run["history"].iloc[-1]
    expected = {
        "params": {"name": name, "lr_g": RUNS[name], "lr_d": RUNS[name], "preset": "dcgan", "steps": "3"},
        "metrics": {**{k: js_number(last[k]) for k in ("loss_d", "loss_g")}, FID: js_number(FIDS[name])},
    }
    for kind, pairs in expected.items():
        missing = {k: v for k, v in pairs.items() if not shows_pair(text, k, v)}
        assert not missing, f"{url} does not show {kind} {missing}:\n{text[:3000]}"
    assert re.search(r"Logged models \(1\).* generator Ready", text), f"{url} lists no generator:\n{text[:3000]}"


def test_run_charts_show_the_losses_and_the_fid_curve(ui, store, browser):
    """The run's "Model metrics" tab draws a chart per metric: the loss per step, and FID per step."""
    name, run = "experiment", store["runs"]["experiment"]
    url = f"{ui}/#/experiments/{store['experiment_id']}/runs/{run['id']}/model-metrics?{ML_VIEW}"
    needles = [f"{name} (loss_d)", f"{name} (fid_curve.digit_classifier)"]  # each chart's legend
    dom = browser.dump(url, needles, window=(WINDOW[0], 2200))  # tall: charts render when in view
    text = page_text(dom)
    assert all(n in text for n in needles), f"{url} draws no {needles}:\n{text[:3000]}"
    assert dom.count('class="main-svg"') >= 2  # plotly's drawn charts


def test_the_generator_is_listed_with_its_model_files(ui, store, browser):
    """The experiment's Models tab lists each run's generator, and the model's artifacts hold an
    MLflow model (MLmodel, the pickled module under data/, its input example)."""
    url = f"{ui}/#/experiments/{store['experiment_id']}/models?{ML_VIEW}"
    text = page_text(browser.dump(url, ["generator", *RUNS]))
    assert text.count("generator Ready") == len(RUNS) and all(n in text for n in RUNS), text[:2000]
    model_id = store["runs"]["experiment"]["model_id"]
    url = f"{ui}/#/experiments/{store['experiment_id']}/models/{model_id}/artifacts?{ML_VIEW}"
    text = page_text(browser.dump(url, ["MLmodel"]))
    missing = [f for f in ("data", "MLmodel", "input_example.json", "requirements.txt") if f not in text.split()]
    assert not missing, f"{url} does not list {missing}:\n{text[:2000]}"


def test_sample_grid_is_shown(ui, store, browser):
    """The run's artifacts list every sample grid, and opening the last one shows it as an image."""
    run = store["runs"]["experiment"]
    assert run["grids"], "training wrote no sample grids"
    path = f"samples/{run['grids'][-1]}"
    url = f"{ui}/#/experiments/{store['experiment_id']}/runs/{run['id']}/artifacts/{path}"
    dom = browser.dump(url, [path, *run["grids"]])
    text = page_text(dom)
    missing = [g for g in [*run["grids"], "config.yaml"] if g not in text]
    assert not missing, f"{url} does not list {missing}:\n{text[:3000]}"
    shown = [img for img in images(dom) if img.get("alt") == path]
    assert shown and shown[0].get("src", "").startswith("blob:"), f"{path} is not previewed: {images(dom)}"

    shot = browser.screenshot(url, "artifact.png")
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.size == WINDOW
        assert len(img.convert("RGB").getcolors(1 << 24)) > 100, "the screenshot is (nearly) blank"
