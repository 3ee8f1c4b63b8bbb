"""What a tiny `lottery run` costs beyond its training: imports, data, figures, report, exit.

Each round times, as new processes, `lottery run synthetic-tiny` into a fresh store and, beside
it, `python -c "import torch"` (what any tool built on torch pays just to start). The run's
training is the time its invocation record gives to the experiment itself (every unit trained
and written); the rest of its wall time is its fixed cost. Medians over the rounds; the last
line: `RESULT fixed_seconds=… torch_start_seconds=… fixed_over_torch_start=…`.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import result

ROUNDS = 7


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def tiny_run() -> tuple[float, float]:
    """(wall seconds, seconds inside the experiment) of one `lottery run synthetic-tiny`."""
    with tempfile.TemporaryDirectory() as store:
        seconds = wall([sys.executable, "-m", "lottery.cli", "run", "synthetic-tiny", "--store", store, "--quiet"])
        (log,) = Path(store).glob("*/invocations.jsonl")
        finished = [json.loads(line) for line in log.read_text().splitlines()][-1]
        return seconds, finished["seconds"]


torch_start, fixed, training = [], [], []
for _ in range(ROUNDS):
    torch_start.append(wall([sys.executable, "-c", "import torch"]))
    total, inside = tiny_run()
    fixed.append(total - inside)
    training.append(inside)
f, t, tr = statistics.median(fixed), statistics.median(torch_start), statistics.median(training)
print(f"lottery run synthetic-tiny: {f + tr:.2f} s, of which training {tr:.2f} s and fixed costs {f:.2f} s "
      f"(range {min(fixed):.2f}-{max(fixed):.2f}); python -c 'import torch': {t:.2f} s (medians of {ROUNDS})")
result(fixed_seconds=f, torch_start_seconds=t, fixed_over_torch_start=f / t)
