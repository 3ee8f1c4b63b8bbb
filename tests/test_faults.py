"""The fault catalogue (docs/faults.md): every bad input and fault gives one clear line and a
documented exit code, never a traceback, and leaves the store so that the same command resumes.

CLI cases run `lottery` in this process; signals run it as a child process. API cases call
find_ticket. docs/faults.md lists every case by its id (tests/test_docs.py holds the two together)."""

import errno
import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import lottery
from lottery import atomic
from lottery.cli import main
from lottery.errors import ConfigError

TINY = ["run", "synthetic-tiny", "--quiet", "--levels", "1"]
TIMING = ["train_seconds", "score_seconds", "find_seconds"]


def _mnist_dir(tmp: Path, damage: str) -> Path:
    """A data directory whose mnist/ holds four files, one of them damaged as `damage` says."""
    folder = tmp / "data" / "mnist"
    folder.mkdir(parents=True)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    for n in names:
        (folder / n).write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))  # a valid IDX file, not MNIST's
    if damage in ("garbage gz", "truncated gz"):
        (folder / names[0]).unlink()
        payload = b"not gzip at all" if damage == "garbage gz" else gzip.compress(b"\0" * 4000)[:30]
        (folder / (names[0] + ".gz")).write_bytes(payload)
    return tmp / "data"


def _future_store(tmp: Path) -> Path:
    """A store one of whose units was written by a newer version (store format 99)."""
    assert main([*TINY, "--store", str(tmp / "store")]) == 0
    done = next((tmp / "store").glob("*/units/level_00/imp/seed_0/DONE"))
    manifest = json.loads(done.read_text())
    done.write_text(json.dumps({**manifest, "format": 99}))
    return tmp / "store"


def _a_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("")
    return tmp / "afile"


# id, argv (STORE: a fresh store, FILE: a plain file, RUN: a finished tiny run), setup, exit code, what stderr says
CLI_CASES = [
    ("unknown-preset", ["run", "nonesuch"], None, 2, "unknown preset 'nonesuch'; choose one of"),
    ("unknown-model", [*TINY, "--set", "model.name=resnet9000"], None, 2, "model.name='resnet9000' is unknown"),
    ("unknown-dataset", [*TINY, "--set", "data.dataset=imagenet"], None, 2, "data.dataset='imagenet' is unknown"),
    ("unknown-branch", [*TINY, "--branches", "imp,magic"], None, 2, "branches ['magic'] are unknown"),
    ("rate-above-1", [*TINY, "--set", "prune.rate=1.5"], None, 2, "prune.rate=1.5 must be in [0, 1)"),
    ("rate-negative", [*TINY, "--set", "prune.rate=-0.2"], None, 2, "prune.rate=-0.2 must be in [0, 1)"),
    ("output-rate-1", [*TINY, "--set", "prune.output_rate=1"], None, 2, "prune.output_rate=1.0 must be in [0, 1)"),
    ("levels-negative", ["run", "synthetic-tiny", "--levels", "-1"], None, 2, "levels=-1 must be between 0 and 60"),
    ("levels-not-a-number", ["run", "synthetic-tiny", "--levels", "x"], None, 2, "argument --levels: invalid int value"),
    ("seeds-garbage", [*TINY, "--seeds", "a,b"], None, 2, "--seeds 'a,b' must be comma-separated integers"),
    ("seeds-duplicate", [*TINY, "--seeds", "1,1"], None, 2, "has duplicates"),
    ("set-typo", [*TINY, "--set", "train.lrr=0.1"], None, 2, "--set 'train.lrr' names no setting"),
    ("set-no-value", [*TINY, "--set", "train.lr"], None, 2, "--set 'train.lr' must look like key=value"),
    ("lr-infinite", [*TINY, "--set", "train.lr=inf"], None, 2, "train.lr=inf must be a positive finite number"),
    ("batch-larger-than-data", [*TINY, "--set", "train.batch_size=5000"], None, 2,
     "train.batch_size=5000 is larger than the 1000 training examples"),
    ("rewind-past-the-end", [*TINY, "--rewind-steps", "0,999999", "--store", "STORE"], None, 2,
     "rewind_step=999999 (999999 steps) is past the end of training"),
    ("threads-zero", [*TINY, "--threads", "0"], None, 2, "--threads 0 must be at least 1"),
    ("no-data-folder", ["run", "lenet-mnist-quick", "--data-dir", "MISSING"], None, 2, "no mnist/ folder"),
    ("wrong-md5", ["run", "lenet-mnist-quick", "--data-dir", "DATA"], "md5", 2, "does not match the published"),
    ("garbage-gz", ["run", "lenet-mnist-quick", "--data-dir", "DATA"], "garbage gz", 2, "is not a readable gzip file"),
    ("truncated-gz", ["run", "lenet-mnist-quick", "--data-dir", "DATA"], "truncated gz", 2,
     "is not a readable gzip file"),
    ("store-is-a-file", [*TINY, "--store", "FILE"], "file", 2, "is a file, not a folder"),
    ("store-unwritable", [*TINY, "--store", "FILE/runs"], "file", 2, "is not writable"),
    ("store-from-a-newer-version", [*TINY, "--store", "STORE"], "future", 2, "was written by a newer lottery"),
    ("ray-unreachable", [*TINY, "--executor", "ray", "--address", "127.0.0.1:9"], None, 2,
     "no Ray cluster answers at 127.0.0.1:9"),
    ("address-without-ray", [*TINY, "--address", "127.0.0.1:9"], None, 2, "--address names a Ray cluster"),
    ("show-no-run", ["show", "nonesuch", "--store", "STORE"], None, 2, "no run 'nonesuch'"),
    ("export-unknown-format", ["export", "RUN", "--out", "OUT/t.txt"], "run", 2, "cannot tell the format"),
    ("export-into-missing-folder", ["export", "RUN", "--out", "MISSING/t.csv"], "run", 2,
     "No such file or directory"),
    ("report-out-is-a-file", ["report", "RUN", "--out", "FILE"], "run+file", 2, "is a file; give a folder"),
    ("plot-out-is-a-file", ["plot", "RUN", "--out", "FILE"], "run+file", 2, "is a file; give a folder"),
    ("diverging-training", [*TINY, "--set", "train.optimizer=sgd", "--set", "train.lr=1e30", "--store", "STORE"], None,
     3, "diverged (their loss stopped being finite)"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_faults_are_one_line_with_their_exit_code(tmp_path, capsys, case):
    _, argv, setup, code, says = case
    store = tmp_path / "store"
    places = {"STORE": store, "MISSING": tmp_path / "missing", "OUT": tmp_path}
    if setup in ("md5", "garbage gz", "truncated gz"):
        places["DATA"] = _mnist_dir(tmp_path, setup)
    if setup in ("file", "run+file"):
        places["FILE"] = _a_file(tmp_path)
    if setup == "future":
        _future_store(tmp_path)
    if setup in ("run", "run+file"):
        assert main([*TINY, "--store", str(store)]) == 0
        places["RUN"] = next(p for p in store.iterdir() if (p / "config.json").exists())
    capsys.readouterr()

    def place(arg):
        for key, path in places.items():
            if arg == key or arg.startswith(key + "/"):
                return str(path) + arg[len(key):]
        return arg
    assert main([place(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    said = [line for line in err.splitlines() if line.startswith("lottery")]
    assert len(said) == 1 and says in said[0], err  # one line (besides a run's opening "run DIR …" line)
    if case[0] == "rewind-past-the-end":
        assert not list(store.glob("*/units/*")), "checked before any work"


def _results(store: Path) -> pd.DataFrame:
    (run_dir,) = [p for p in store.iterdir() if (p / "config.json").exists()]
    return pd.read_csv(run_dir / "results.csv").drop(columns=TIMING)


def test_a_full_disk_is_one_line_and_the_same_command_resumes(tmp_path, capsys, monkeypatch):
    argv = [*TINY, "--levels", "2"]
    assert main([*argv, "--store", str(tmp_path / "whole")]) == 0
    real, calls = atomic.write_bytes, []

    def full_after_some(path, data):
        calls.append(path)
        if len(calls) > 12:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)
    monkeypatch.setattr(atomic, "write_bytes", full_after_some)
    capsys.readouterr()
    assert main([*argv, "--store", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "run the same command again" in err and "Traceback" not in err
    assert not list((tmp_path / "full").rglob("*.tmp")), "no debris"
    monkeypatch.setattr(atomic, "write_bytes", real)
    assert main([*argv, "--store", str(tmp_path / "full")]) == 0
    pd.testing.assert_frame_equal(_results(tmp_path / "whole"), _results(tmp_path / "full"))


@pytest.mark.parametrize("sig, code, says", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["sigint", "sigterm"])
def test_a_signal_mid_run_stops_cleanly_and_the_same_command_resumes(tmp_path, sig, code, says):
    argv = [*TINY, "--levels", "2", "--set", "train.length=40ep", "--checkpoint-every", "20"]
    assert main([*argv, "--store", str(tmp_path / "whole")]) == 0
    store = tmp_path / "cut"
    child = subprocess.Popen([sys.executable, "-m", "lottery.cli", *argv, "--store", str(store)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(store.glob("*/checkpoints/*.safetensors")):
        time.sleep(0.01)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code and says in err and "Traceback" not in err, err
    assert main([*argv, "--store", str(store)]) == 0
    pd.testing.assert_frame_equal(_results(tmp_path / "whole"), _results(store))


def test_ctrl_c_while_torch_loads_is_one_line(tmp_path):
    child = subprocess.Popen([sys.executable, "-m", "lottery.cli", *TINY, "--store", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # inside `import torch` on the machines here (it takes 0.8 s and more)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "interrupted" in err and "Traceback" not in err, err


class NoWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return x[:, :4] * self.scale


def _data(n=120, width=8, classes=4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, width, generator=g), torch.randint(0, classes, (n,), generator=g)


API_CASES = [
    ("api-nothing-prunable", dict(model=NoWeights), "the model has nothing to prune"),
    ("api-negative-labels", dict(train=(_data()[0], -_data()[1] - 1)), "labels include -"),
    ("api-empty-data", dict(train=(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))), "train has no examples"),
    ("api-test-width", dict(test=(torch.randn(50, 9), torch.zeros(50, dtype=torch.long))),
     "train inputs have shape (8,) but test inputs (9,)"),
    ("api-batch-larger-than-data", dict(batch_size=500), "train.batch_size=500 is larger than the"),
    ("api-seeds-not-integers", dict(seeds=(0.5, 1)), "seeds must be integers"),
    ("api-unknown-option", dict(learning_rate=0.1), "unknown training option(s) learning_rate"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_faults_are_a_config_error_before_any_work(tmp_path, case):
    _, changes, says = case
    kwargs = dict(model=lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), train=_data(),
                  test=_data(60), levels=1, seeds=(0,), length="1ep", store=tmp_path)
    kwargs.update(changes)
    with pytest.raises(ConfigError, match=None) as e:
        lottery.find_ticket(**kwargs)
    assert says in str(e.value)
    assert not list(tmp_path.glob("*/units/*")), "nothing trained"


def test_the_catalogue_has_at_least_25_cases():
    assert len(CLI_CASES) + len(API_CASES) + 4 >= 25
