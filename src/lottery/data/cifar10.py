"""CIFAR-10 from the user's own files: it cannot be downloaded from these machines.

`--data-dir DIR` (or $LOTTERY_DATA_DIR) names a folder holding any one of, tried in this order:

- `cifar-10-batches-bin/`: the binary version, six files of 10,000 fixed-size records (a label
  byte, then 3,072 pixel bytes): read as bytes, nothing unpickled. No per-file checksums are
  published for it, so each file is checked by its structure (whole records, labels 0–9), and
  the number of records is said when it is not the published 10,000 a file.
- `cifar-10-batches-py/`: the Python version, six pickled batches, each checked against its
  published MD5 before it is read, then read by an unpickler that admits numpy arrays and
  builtin containers only, and checked to hold the batch's known structure.
- `cifar-10-binary.tar.gz` or `cifar-10-python.tar.gz`, the archives as downloaded, checked
  against their published MD5s and read without being extracted.

A verified copy goes to the user cache. Images are scaled to [0, 1] and normalised per channel
with the training set's mean and standard deviation.
"""

import io
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import torch

from lottery.data.cache import cache_dir, check_md5, load_tensors, save_tensors
from lottery.data.pickles import arrays_only
from lottery.errors import DataError, DataWarning

SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
TEST = "test_batch"
RECORDS, PIXELS = 10_000, 3 * 32 * 32
PY_MD5 = {  # the published MD5s of the Python batches (as torchvision checks them)
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}
ARCHIVE_MD5 = {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530",
               "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
CACHE_NAME = "cifar10-v1.safetensors"


def examples(data_dir=None) -> tuple[torch.Tensor, ...]:
    """(train x [50000, 3, 32, 32], train y, test x, test y), normalised, from the user's files."""
    arrays = load(data_dir)
    x, test_x = arrays["train_images"].float() / 255, arrays["test_images"].float() / 255
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    return (x - mean) / std, arrays["train_labels"].long(), (test_x - mean) / std, arrays["test_labels"].long()


def load(data_dir=None) -> dict[str, torch.Tensor]:
    """uint8 images [N, 3, 32, 32] and labels, train and test, verified: from the data folder when
    it holds CIFAR-10, else from the cache."""
    cached = cache_dir() / CACHE_NAME
    folder = data_dir or os.environ.get("LOTTERY_DATA_DIR")
    if not (folder and holds_cifar(Path(folder))):
        if cached.exists():
            return load_tensors(cached)
        raise DataError(f"CIFAR-10 not found{f' in {folder}' if folder else ''} (it cannot be downloaded here): get "
                        f"the binary or Python version from {SOURCE} and pass the folder holding it "
                        "(cifar-10-batches-bin/, cifar-10-batches-py/ or the .tar.gz) as --data-dir (or LOTTERY_DATA_DIR)")
    arrays = read_folder(Path(folder))
    try:
        save_tensors(cached, arrays)
    except OSError:  # a read-only home costs only the next parse
        pass
    return arrays


def holds_cifar(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("cifar-10-batches-bin", "cifar-10-batches-py", *ARCHIVE_MD5))


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "cifar-10-batches-bin").is_dir():
        d = folder / "cifar-10-batches-bin"
        return from_binary({name: (d / f"{name}.bin").read_bytes() for name in [*TRAIN, TEST]
                            if (d / f"{name}.bin").exists()} or _missing(d))
    if (folder / "cifar-10-batches-py").is_dir():
        d = folder / "cifar-10-batches-py"
        return from_python({name: (d / name).read_bytes() for name in [*TRAIN, TEST] if (d / name).exists()}
                           or _missing(d))
    for archive, md5 in ARCHIVE_MD5.items():
        if (folder / archive).exists():
            return from_archive((folder / archive).read_bytes(), archive, md5)
    raise DataError(f"no CIFAR-10 in {folder}: put cifar-10-batches-bin/, cifar-10-batches-py/ or the .tar.gz "
                    f"archive from {SOURCE} there")


def _missing(folder: Path):
    raise DataError(f"{folder} holds none of the batch files ({', '.join(TRAIN)}, {TEST})")


def _complete(files: dict, kind: str) -> None:
    missing = [n for n in [*TRAIN, TEST] if n not in files]
    if missing:
        raise DataError(f"CIFAR-10 ({kind}) lacks {', '.join(missing)}")


def from_binary(files: dict[str, bytes]) -> dict[str, torch.Tensor]:
    """The binary version's six files (name → bytes): fixed records, checked by their structure."""
    _complete(files, "binary version")
    parsed = {}
    for name, data in files.items():
        records, rest = divmod(len(data), 1 + PIXELS)
        if rest or not records:
            raise DataError(f"{name}.bin has {len(data):,} bytes: not whole records of {1 + PIXELS:,} bytes "
                            f"(the published file is {RECORDS:,} of them); refusing the file")
        if records != RECORDS:
            warnings.warn(f"{name}.bin holds {records:,} records, not the published {RECORDS:,}", DataWarning)
        rows = np.frombuffer(data, dtype=np.uint8).reshape(records, 1 + PIXELS)
        if rows[:, 0].max() > 9:
            raise DataError(f"{name}.bin holds labels above 9: not a CIFAR-10 batch; refusing the file")
        parsed[name] = (rows[:, 1:].reshape(records, 3, 32, 32), rows[:, 0])
    return _arrays(parsed)


def from_python(files: dict[str, bytes], checksums: dict[str, str] | None = None,
                records: int = RECORDS) -> dict[str, torch.Tensor]:
    """The Python version's six pickled batches (name → bytes): each file's MD5 checked first, then
    unpickled with numpy arrays and containers only, then checked to be a batch."""
    _complete(files, "Python version")
    sums = checksums or PY_MD5
    parsed = {}
    for name, data in files.items():
        check_md5(name, data, sums[name])
        batch = arrays_only(data, encoding="bytes")
        pixels, labels = batch.get(b"data") if isinstance(batch, dict) else None, \
            batch.get(b"labels") if isinstance(batch, dict) else None
        if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.shape == (records, PIXELS)
                and isinstance(labels, list) and len(labels) == records):
            raise DataError(f"{name} is not a CIFAR-10 batch (a dict with uint8 data [{records}, {PIXELS}] and "
                            f"{records} labels); refusing the file")
        parsed[name] = (pixels.reshape(records, 3, 32, 32), np.asarray(labels, dtype=np.uint8))
    return _arrays(parsed)


def from_archive(data: bytes, name: str, md5: str, checksums: dict[str, str] | None = None,
                 records: int = RECORDS) -> dict[str, torch.Tensor]:
    """A downloaded archive, checked against its published MD5, its members read in memory (no
    file is extracted to disk)."""
    check_md5(name, data, md5)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        if "binary" in name:
            return from_binary({n: tar.extractfile(members[f"{n}.bin"]).read() for n in [*TRAIN, TEST]
                                if f"{n}.bin" in members})
        return from_python({n: tar.extractfile(members[n]).read() for n in [*TRAIN, TEST] if n in members},
                           checksums, records)


def _arrays(parsed: dict) -> dict[str, torch.Tensor]:
    train = [parsed[n] for n in TRAIN]
    return {"train_images": torch.from_numpy(np.concatenate([x for x, _ in train]).copy()),
            "train_labels": torch.from_numpy(np.concatenate([y for _, y in train]).copy()),
            "test_images": torch.from_numpy(parsed[TEST][0].copy()),
            "test_labels": torch.from_numpy(parsed[TEST][1].copy())}
