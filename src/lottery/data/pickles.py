"""Reading third-party pickles (MNIST's classic file, CIFAR-10's Python batches) without ever
executing code: only numpy arrays and plain containers are admitted."""

import io
import pickle

import numpy as np


class ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and the builtin containers only: anything else is refused, before
    it could run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # protocol-2 pickles store raw bytes through it; it only encodes text

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # pickles from numpy 1 name the old path
        return super().find_class(module, name)


def arrays_only(data, encoding: str = "latin1"):
    """The object pickled in `data` (bytes or a binary file), numpy arrays and containers only."""
    return ArraysOnly(io.BytesIO(data) if isinstance(data, bytes) else data, encoding=encoding).load()
