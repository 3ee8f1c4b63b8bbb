"""Figures from a synthetic table, and the HTML report rendered in a real headless Chromium."""

import json
import shutil
import subprocess

import pandas as pd
import pytest
from test_stats import table as synthetic_table

from lottery.analysis import plots
from lottery.analysis.report import write_report
from lottery.imp.driver import Experiment, RunOptions
from lottery.store import RunStore


def test_figures_from_a_small_synthetic_table(tmp_path):
    df = synthetic_table([0.004, 0.002, -0.003])
    df["density[fc1.weight]"] = df.fraction_remaining
    df["density[fc2.weight]"] = df.fraction_remaining ** 0.5
    df["find_flops"] = df.level * 1e9
    df["find_seconds"] = df.level * 3.0
    df["train_flops_effective"] = 1e9 * df.fraction_remaining
    df["train_seconds"] = 3.0
    hist = pd.DataFrame([dict(branch="imp", level=lv, seed=s, fraction_remaining=0.8 ** lv, step=st,
                              val_acc=0.9 + 0.01 * st / 100) for lv in range(4) for s in range(3) for st in (0, 100, 200)])
    paths = plots.all_figures(df, hist, tmp_path)
    assert set(paths) == {"accuracy", "early_stop", "curves", "density", "cost"}
    for p in paths.values():
        assert p.stat().st_size > 5_000 and p.with_suffix(".svg").stat().st_size > 5_000


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from conftest import tiny_config
    root = tmp_path_factory.mktemp("rep")
    run_dir = Experiment(tiny_config(), RunOptions(store=root / "store")).run()
    html_path, md_path = write_report([RunStore(run_dir)], root / "out")
    return html_path, md_path


def test_report_files_hold_verdict_table_and_inline_figures(report):
    html_path, md_path = report
    page = html_path.read_text()
    assert 'id="verdict"' in page and 'id="results"' in page and page.count("data:image/png;base64,") == 5
    assert "src=\"http" not in page, "self-contained: nothing fetched"
    md = md_path.read_text()
    assert "Rule: levels are tested in order" in md and "| branch" in md
    bought = md.split("### What the ticket buys", 1)[1].split("###", 1)[0]
    assert "bytes" in bought and "µs" in bought, "size on disk and measured times at the verdict's level"


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium package)")
    html_path, _ = report
    # A probe copy of the page records, after load, what the browser actually rendered.
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
              "document.body.setAttribute('data-probe',JSON.stringify({images:imgs.map(i=>[i.naturalWidth,i.naturalHeight]),"
              "verdict:document.getElementById('verdict').innerText,"
              "rows:document.querySelectorAll('#results tbody tr').length}));});</script>")
    probe.write_text(html_path.read_text().replace("</body>", script + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    marker = 'data-probe="'
    raw = dom.stdout[dom.stdout.index(marker) + len(marker):]
    raw = raw[:raw.index('"')].replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    seen = json.loads(raw)
    assert len(seen["images"]) == 5 and all(w > 100 and h > 100 for w, h in seen["images"]), seen["images"]
    assert "test accuracy at early stop" in seen["verdict"]
    assert seen["rows"] == 7, "dense + 2 levels × 3 branches"
    shot = html_path.parent / "screenshot.png"
    subprocess.run([browser, *flags, "--window-size=1280,2400", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_a_figure_claims_an_interval_only_where_there_is_one(monkeypatch, tmp_path):
    titles = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out_dir, name, formats=(): titles.append(fig._suptitle.get_text()))
    three = synthetic_table([0.004, 0.002])
    one = three[three.seed == 0]
    for df in (three, one):
        df = df.assign(find_flops=1e9, find_seconds=1.0, train_flops_effective=1e9, train_seconds=1.0)
        plots.accuracy_figure(df, tmp_path)
        plots.cost_figure(df, tmp_path)
    assert "mean and 95% CI over 3 seeds" in titles[0] and "mean and 95% CI over 3 seeds" in titles[1]
    assert all("one seed, no interval" in t and "CI" not in t for t in titles[2:])
