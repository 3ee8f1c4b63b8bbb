"""What ran an experiment: versions, the device and its name, CPUs and threads. Recorded with
every invocation, so a run's numbers can be traced to the machine that made them."""

import os
import platform
import sys
from pathlib import Path

import torch

from lottery.version import __version__


def cpu_name() -> str:
    """The processor's model name (Linux gives it in /proc/cpuinfo; platform.processor() there is
    often empty or just the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device: torch.device = torch.device("cpu")) -> dict:
    """What ran the experiment: versions, device, threads (recorded with every invocation)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"lottery": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "device": str(device), "device_name": name,
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "argv": sys.argv}
