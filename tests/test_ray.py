"""The Ray executor: the same numbers as the local one, and a run that survives losing a node.

Few and small: starting Ray costs seconds. They skip where Ray is not installed."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lottery.cli import main

ray = pytest.importorskip("ray")

TIMING = ["train_seconds", "score_seconds", "find_seconds"]
# a 2-seed IMP run with both controls, on the synthetic problem
RUN = ["run", "synthetic-tiny", "--quiet", "--seeds", "0,1", "--levels", "2", "--branches", "imp,reinit,random_prune"]


def results(store: Path) -> pd.DataFrame:
    (run_dir,) = [p for p in store.iterdir() if (p / "config.json").exists()]
    return pd.read_csv(run_dir / "results.csv").drop(columns=TIMING)


def weights(store: Path) -> dict[str, bytes]:
    """Every unit's trained weights, as tensors' bytes (the files' headers differ in nothing else)."""
    from lottery.atomic import read_tensors

    out = {}
    for f in sorted(store.glob("*/units/*/*/*/final.safetensors")):
        out[str(f.relative_to(store))] = b"".join(t.numpy().tobytes() for t in read_tensors(f).values())
    return out


def test_ray_trains_the_same_bits_as_the_local_executor(tmp_path):
    assert main([*RUN, "--store", str(tmp_path / "local")]) == 0
    assert main([*RUN, "--store", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    local, remote = results(tmp_path / "local"), results(tmp_path / "ray")
    assert len(local) == 2 * (1 + 2 * 3)
    pd.testing.assert_frame_equal(local, remote)
    assert weights(tmp_path / "local") == {k.replace("ray/", "local/", 1): v for k, v in weights(tmp_path / "ray").items()}
    invocation = json.loads((next((tmp_path / "ray").iterdir()) / "invocations.jsonl").read_text().splitlines()[-1])
    assert invocation["executor"] == "ray" and invocation["event"] == "finished"


def test_an_unreachable_cluster_is_one_line(capsys):
    assert main([*RUN, "--executor", "ray", "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "no Ray cluster answers at 127.0.0.1:9" in err and "Traceback" not in err


def test_a_run_survives_losing_a_node(tmp_path):
    """Two nodes on this machine; the second is killed while it trains a task. Ray retries the
    task on the head and the run ends with the local executor's results."""
    from ray.cluster_utils import Cluster

    slow = ["--set", "train.length=60ep", "--set", "train.eval_every=20ep"]  # a few seconds a task
    assert main([*RUN, *slow, "--store", str(tmp_path / "local")]) == 0
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        store = tmp_path / "ray"
        cli = subprocess.Popen([sys.executable, "-m", "lottery.cli", *RUN, *slow, "--store", str(store),
                                "--executor", "ray", "--address", cluster.address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, seen = time.time() + 120, False
        while time.time() < deadline and not seen and cli.poll() is None:
            for lock in store.glob("*/locks/*.lock"):
                try:
                    holder = json.loads(lock.read_text() or "{}")
                except json.JSONDecodeError:
                    continue
                seen = seen or second.unique_id[:8] in holder.get("node", "")
            time.sleep(0.05)
        assert seen, "the second node never trained a task"
        cluster.remove_node(second, allow_graceful=False)
        out, err = cli.communicate(timeout=300)
        assert cli.returncode == 0, err[-2000:]
    finally:
        cluster.shutdown()
    pd.testing.assert_frame_equal(results(tmp_path / "local"), results(tmp_path / "ray"))
