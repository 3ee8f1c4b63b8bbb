import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lottery.cli import main
from lottery.version import __version__


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lottery.cli", *args], capture_output=True, text=True, env=env)



@pytest.mark.parametrize("args, words", [
    (["run", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["run", "synthetic-tiny", "--set", "train.lr=abc"], "train.lr='abc' is not a valid float"),
    (["run", "synthetic-tiny", "--seeds", "a,b"], "--seeds 'a,b' must be comma-separated integers"),
    (["run", "synthetic-tiny", "--branches", "imp,lucky"], "branches ['lucky'] are unknown"),
    (["run", "synthetic-tiny", "--set", "model.name=resnet9000"], "model.name='resnet9000' is unknown; choose one of"),
    (["run", "synthetic-tiny", "--set", "data.dataset=cifar11"], "data.dataset='cifar11' is unknown; choose one of"),
    (["run", "lenet-mnist-quick", "--levels", "1"], "MNIST not found"),
    (["run", "synthetic-tiny", "--set", "rewind_step=99ep"], "past the end of training"),
    (["show", "deadbeef"], "no run 'deadbeef'"),
    (["run", "synthetic-tiny", "--device", "tpu"], "device 'tpu' is not a device; use auto, cpu, cuda or cuda:N"),
    (["run", "synthetic-tiny", "--device", "cuda:99"], "device 'cuda:99'"),
    (["run", "synthetic-tiny", "--threads", "0"], "--threads 0 must be at least 1"),
    (["run", "synthetic-tiny", "--lanes", "0"], "--lanes 0 must be at least 1"),
    (["run", "synthetic-tiny", "--engine", "jax"], "engine 'jax' is unknown; choose one of auto, mlp, vmap, modules, loop"),
])
def test_user_mistakes_give_one_clear_line_and_exit_2(args, words, capsys, tmp_path):
    code = main([*args, "--store", str(tmp_path / "store")] if args[0] == "run" else [*args, "--store", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err
    assert "Traceback" not in err and err.startswith("lottery: error:")


def test_unwritable_store(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "synthetic-tiny", "--store", str(blocker / "store")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_help_everywhere():
    for args in (["--help"], ["run", "--help"], ["show", "--help"], ["plot", "--help"], ["presets", "--help"]):
        r = run_cli(*args)
        assert r.returncode == 0 and "usage:" in r.stdout


def test_run_show_plot_end_to_end(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "synthetic-tiny", "--store", str(store), "--quiet", "--levels", "2", "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run_dir = Path(out[-1])
    assert run_dir.parent == store and (run_dir / "results.csv").exists() and (run_dir / "accuracy.png").stat().st_size > 10_000
    assert any(line.startswith("Rule: levels are tested in order") for line in out)
    assert (run_dir / "report" / "report.html").exists()
    assert main(["show", run_dir.name[:8], "--store", str(store)]) == 0
    assert "random_prune" in capsys.readouterr().out
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "accuracy.png").exists() and (tmp_path / "figs" / "accuracy.svg").exists()
    assert main(["status", str(run_dir)]) == 0
    assert "14/14 units done, 0 running, 0 waiting (finished)" in capsys.readouterr().out
    assert main(["presets"]) == 0 and "lenet-mnist-quick" in capsys.readouterr().out


def test_compiled_steps_can_be_turned_off(tmp_path, capsys):
    """--no-script trains the step in Python (the run's record and every unit say so);
    --no-cuda-graphs is accepted everywhere and matters on a GPU only (tests/test_cuda.py)."""
    import json

    for flags, scripted in (([], True), (["--no-script", "--no-cuda-graphs"], False)):
        store = tmp_path / str(scripted)
        assert main(["run", "synthetic-tiny", "--store", str(store), "--quiet", "--levels", "1", *flags]) == 0
        run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
        record = json.loads((run_dir / "invocations.jsonl").read_text().splitlines()[-1])
        assert record["script"] is scripted and record["cuda_graphs"] is False and record["engine"] == "mlp"
        summaries = [json.loads(p.read_text()) for p in run_dir.glob("units/*/*/*/summary.json")]
        assert {s["scripted"] for s in summaries} == {scripted}


def test_a_list_of_rewinding_points_runs_one_experiment_each(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "synthetic-tiny", "--store", str(store), "--quiet", "--levels", "1",
                 "--branches", "imp", "--rewind-steps", "0,5,1ep"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    dirs = [Path(line) for line in out[-3:]]
    assert len({d.name for d in dirs}) == 3 and all((d / "results.csv").exists() for d in dirs)
    assert any(line.startswith("rewinding comparison:") for line in out)
    import json
    assert [json.loads((d / "config.json").read_text())["rewind_step"] for d in dirs] == ["0", "5", "1ep"]
    assert main(["run", "synthetic-tiny", "--store", str(store), "--rewind-steps", "0,soon"]) == 2
    assert "rewind_step='soon' is not a length" in capsys.readouterr().err


def test_export_and_compare(tmp_path, capsys):
    import pandas as pd

    store = tmp_path / "store"
    for lr in ("3e-3", "1e-2"):
        assert main(["run", "synthetic-tiny", "--store", str(store), "--quiet", "--levels", "1",
                     "--set", f"train.lr={lr}"]) == 0
    a, b = sorted(p for p in store.iterdir() if (p / "config.json").exists())
    capsys.readouterr()
    assert main(["export", str(a), "--out", str(tmp_path / "t.parquet")]) == 0
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert len(df) == 4 and {"find_flops", "samples", "train_flops_effective"} <= set(df.columns)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "train.lr: 0.003 → 0.01" in out or "train.lr: 0.01 → 0.003" in out
    assert "random_prune" in out and "B − A" in out



@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished synthetic-tiny run with two seeds (made once for the tests of reading commands)."""
    store = tmp_path_factory.mktemp("store")
    r = run_cli("run", "synthetic-tiny", "--seeds", "0,1", "--store", str(store), "--quiet")
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip().splitlines()[-1])


def test_version_and_bare_command():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lottery {__version__}"
    bare = run_cli()
    assert bare.returncode == 0 and "usage: lottery" in bare.stdout and "run" in bare.stdout and not bare.stderr


def test_show_fits_the_terminal_and_says_what_it_left_out(tiny_run):
    env = {**os.environ, "COLUMNS": "80"}
    r = run_cli("show", str(tiny_run), env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 10 and all("…" not in line for line in rows), "one line per row, nothing cut short"
    assert "left out for width" in r.stdout and "mean [95% CI] over seeds 0, 1" in r.stdout
    wide = run_cli("show", str(tiny_run), env={**os.environ, "COLUMNS": "220"})
    assert "find s" in wide.stdout and "left out" not in wide.stdout


def test_reading_commands_load_neither_torch_nor_matplotlib(tiny_run):
    """What makes `lottery show` start in well under a second and a half: it imports what it needs."""
    code = ("import sys; from lottery.cli import main; "
            f"main(['show', {str(tiny_run)!r}]); main(['presets']); main(['branches']); main(['status', {str(tiny_run)!r}]); "
            "print('LOADED', *sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "LOADED"


def test_a_closed_pipe_ends_quietly(tiny_run):
    p = subprocess.Popen([sys.executable, "-m", "lottery.cli", "show", "--csv", str(tiny_run)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    p.stdout.close()  # the reader leaves before a line is written (`| head -c 0`): the first write meets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == "", err


def test_export_writes_json_or_says_why_not(tiny_run, tmp_path, capsys):
    import pandas as pd

    assert main(["export", str(tiny_run), "--out", str(tmp_path / "t.json")]) == 0
    rows = json.loads((tmp_path / "t.json").read_text())
    assert len(rows) == 20 and {"branch", "level", "seed", "test_acc_early_stop"} <= set(rows[0])
    assert pd.read_json(tmp_path / "t.json").equals(pd.read_json(tmp_path / "t.json")) and rows[0]["branch"] == "imp"
    capsys.readouterr()
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "t.xlsx")]) == 2
    assert "cannot tell the format from the name" in capsys.readouterr().err and not (tmp_path / "t.xlsx").exists()


def test_parquet_without_pyarrow_says_how_to_install_it(tiny_run, tmp_path):
    code = ("import sys; sys.modules['pyarrow'] = None; from lottery.cli import main; "
            f"sys.exit(main(['export', {str(tiny_run)!r}, '--out', {str(tmp_path / 't.parquet')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and "pip install 'lottery[parquet]'" in r.stderr and "Traceback" not in r.stderr


def test_a_batch_job_gets_plain_progress_lines(tmp_path):
    """stderr not a terminal (SLURM, nohup, CI): plain lines with the level, units, loss, accuracy and ETA."""
    r = run_cli("run", "synthetic-tiny", "--store", str(tmp_path))
    assert r.returncode == 0, r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("lottery: level")]
    assert progress, r.stderr
    assert re.search(r"lottery: level 3/3 · .* · 10/10 units · step \d+/\d+ · train loss [\d.]+ · val acc [\d.]+% · ETA",
                     progress[-1])
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr, "no terminal control codes in a log file"


def test_the_bars_show_the_validation_accuracy():
    import io

    from lottery.progress import RichReporter

    out = io.StringIO()
    bars = RichReporter(out)
    bars.start(3, 0)
    bars.progress.console.file = out
    bars.group("level 1/2 · imp × 1 seed", 100, 1)
    bars.step(50, 100, {"train_loss": 0.5, "val_loss": 0.4, "val_acc": 0.9712})
    bars.progress.refresh()
    bars.finish()
    assert "val acc 97.12%" in out.getvalue()


def test_tensorboard_gets_every_evaluation_of_every_unit(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logs = tmp_path / "tb"
    assert main(["run", "synthetic-tiny", "--store", str(tmp_path / "store"), "--quiet", "--levels", "1",
                 "--tensorboard", str(logs)]) == 0
    runs = sorted(p.parent.relative_to(logs).as_posix() for p in logs.rglob("events.out.tfevents.*"))
    assert runs == ["imp/level_00/seed_0", "imp/level_01/seed_0", "random_prune/level_01/seed_0",
                    "reinit/level_01/seed_0"]
    acc = event_accumulator.EventAccumulator(str(logs / "imp" / "level_01" / "seed_0"))
    acc.Reload()
    assert {"train_loss", "val_loss", "val_acc"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("val_acc")] == [0, 20, 40, 60, 80], "one point per evaluation"


def test_a_tiny_runs_fixed_costs_are_about_twice_starting_torch(tmp_path):
    """Side by side in this test: `python -c 'import torch'` (what any torch tool pays to start) and a
    whole `lottery run synthetic-tiny` minus its training (imports, data, figures, report). On
    a3001c8 the ratio was 3.9 here; benchmarks/fixed_costs.py measures it in rounds."""
    import time

    def wall(*args):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        return time.perf_counter() - start

    starts, fixed = [], []
    for i in range(2):
        starts.append(wall("-c", "import torch"))
        total = wall("-m", "lottery.cli", "run", "synthetic-tiny", "--store", str(tmp_path / str(i)), "--quiet")
        (log,) = (tmp_path / str(i)).glob("*/invocations.jsonl")
        fixed.append(total - json.loads(log.read_text().splitlines()[-1])["seconds"])
    assert min(fixed) / min(starts) < 2.8, (fixed, starts)
