import subprocess
import sys
from pathlib import Path

import pytest

from lottery.cli import main


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
    (["run", "synthetic-tiny", "--engine", "jax"], "engine 'jax' is unknown; choose one of auto, mlp, vmap, loop"),
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
    assert any(line.startswith("Rule: the ticket matches") for line in out)
    assert (run_dir / "report" / "report.html").exists()
    assert main(["show", run_dir.name[:8], "--store", str(store)]) == 0
    assert "random_prune" in capsys.readouterr().out
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "accuracy.png").exists() and (tmp_path / "figs" / "accuracy.svg").exists()
    assert main(["status", str(run_dir)]) == 0
    assert "14/14 units done (finished)" in capsys.readouterr().out
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

