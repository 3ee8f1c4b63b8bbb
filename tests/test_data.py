import gzip
import hashlib
import io
import pickle

import numpy as np
import pytest
import torch

from lottery.config import DataConfig
from lottery.data import load_dataset, mnist
from lottery.errors import ConfigError


def tiny_pickle(n=(6, 3, 4), side=4):
    """A small mnist.pkl.gz look-alike: pixels stored as byte / 256, as in the classic file."""
    rng = np.random.default_rng(0)
    parts = []
    for count in n:
        pixels = rng.integers(0, 256, size=(count, side * side), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.int64)
        parts.append((pixels.astype(np.float32) / 256, labels, pixels))
    blob = io.BytesIO()
    with gzip.GzipFile(fileobj=blob, mode="wb") as f:
        pickle.dump(tuple((x, y) for x, y, _ in parts), f, protocol=2)
    return blob.getvalue(), parts


def test_wheel_pickle_converts_to_the_exact_bytes_and_verifies():
    blob, parts = tiny_pickle()
    train_pixels = np.concatenate([parts[0][2], parts[1][2]]).reshape(-1, 4, 4)
    expected = {
        "train_images": mnist.to_idx(train_pixels),
        "train_labels": mnist.to_idx(np.concatenate([parts[0][1], parts[1][1]]).astype(np.uint8)),
        "test_images": mnist.to_idx(parts[2][2].reshape(-1, 4, 4)),
        "test_labels": mnist.to_idx(parts[2][1].astype(np.uint8)),
    }
    sums = {k: (k, hashlib.md5(v).hexdigest()) for k, v in expected.items()}
    raw = mnist.from_pickle(blob, checksums=sums)
    assert raw == expected
    arrays = mnist.parse_all(raw)
    assert arrays["train_images"].shape == (9, 4, 4) and arrays["train_images"].dtype == torch.uint8
    assert torch.equal(arrays["train_images"], torch.from_numpy(train_pixels))


def test_wheel_pickle_with_wrong_checksum_is_refused():
    blob, _ = tiny_pickle()
    with pytest.raises(mnist.DataError, match="does not match"):
        mnist.from_pickle(blob)  # the real MNIST checksums cannot match this toy


def test_pickle_that_would_run_code_is_refused():
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    blob = io.BytesIO()
    with gzip.GzipFile(fileobj=blob, mode="wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        mnist.from_pickle(blob.getvalue())


def write_idx_dir(root, corrupt=None, gz=True):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    for key, (name, _) in mnist.MD5.items():
        data = mnist.to_idx(images if "images" in key else np.array([3, 4], dtype=np.uint8))
        if key == corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return root


def test_md5_mismatch_is_refused(tmp_path):
    with pytest.raises(mnist.DataError, match="MD5 .* does not match the published"):
        mnist.load(write_idx_dir(tmp_path))


def test_idx_round_trip_and_bad_header():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(mnist.parse_idx(mnist.to_idx(a)), a)
    with pytest.raises(mnist.DataError):
        mnist.parse_idx(b"\x00\x00\x0d\x01" + b"\x00" * 8)


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(mnist.DataError, match="no mnist/ folder"):
        mnist.load(tmp_path)
    with pytest.raises(mnist.DataError, match="LOTTERY_OFFLINE"):
        mnist.load()  # offline and an empty cache


def test_real_mnist_from_shared_data_and_cache(shared_data, tmp_path):
    d = load_dataset(DataConfig("mnist", 5000), data_dir=shared_data)
    assert d.train_x.shape == (55000, 784) and d.val_x.shape == (5000, 784) and d.test_x.shape == (10000, 784)
    assert abs(float(torch.cat([d.train_x, d.val_x]).mean())) < 1e-3
    assert sorted(d.test_y.unique().tolist()) == list(range(10))
    cached = mnist.load()  # now served from the user cache, offline
    assert cached["train_labels"].shape == (60000,)


def test_validation_split_is_fixed_and_disjoint():
    a = load_dataset(DataConfig("synthetic", 200))
    b = load_dataset(DataConfig("synthetic", 200))
    assert torch.equal(a.val_x, b.val_x) and len(a.train_x) + len(a.val_x) == 1200
    with pytest.raises(ConfigError, match="must be smaller"):
        load_dataset(DataConfig("synthetic", 5000))


def test_a_hanging_network_costs_seconds(monkeypatch):
    import threading
    import time as clock

    monkeypatch.setattr(mnist, "CONNECT_TIMEOUT", 0.2)
    never = threading.Event()
    monkeypatch.setattr(mnist.urllib.request, "urlopen", lambda *a, **k: never.wait(30))  # a lookup that hangs
    start = clock.perf_counter()
    with pytest.raises(OSError, match="timed out"):
        mnist._fetch("https://mirror.invalid/x.gz")
    assert clock.perf_counter() - start < 2


def test_an_altered_mnist_cache_is_never_used(tmp_path):
    """Labels zeroed in the cached arrays (same shapes, a valid file): caught against the
    original files' MD5s on load, dropped, and the sources tried instead (none here: offline)."""
    from lottery.data.cache import cache_dir, save_tensors
    from lottery.errors import DataError, DataWarning

    arrays = {"train_images": torch.zeros(3, 28, 28, dtype=torch.uint8), "train_labels": torch.zeros(3, dtype=torch.uint8),
              "test_images": torch.zeros(2, 28, 28, dtype=torch.uint8), "test_labels": torch.zeros(2, dtype=torch.uint8)}
    save_tensors(cache_dir() / mnist.CACHE_NAME, arrays)
    with pytest.warns(DataWarning, match="is not MNIST"), pytest.raises(DataError, match="damaged: dropped"):
        mnist.load()
    assert not (cache_dir() / mnist.CACHE_NAME).exists()


def test_an_altered_mnist1d_cache_is_generated_again(tmp_path):
    from lottery.data import mnist1d
    from lottery.data.cache import cache_dir
    from lottery.errors import DataWarning

    first = mnist1d.load()
    path = cache_dir() / mnist1d.CACHE_NAME
    from safetensors.torch import load_file, save_file

    t = load_file(str(path))
    t["y"] = torch.zeros_like(t["y"])  # re-saved by another tool: no digest of ours
    save_file(t, str(path))
    with pytest.warns(DataWarning, match="damaged or altered"):
        again = mnist1d.load()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(DataWarning, match="damaged or altered"):
        assert torch.equal(mnist1d.load()[1], first[1])


def test_every_dataset_declares_its_example_shape():
    from lottery.data import DATASETS

    d = load_dataset(DataConfig("synthetic", 200))
    assert DATASETS["synthetic"].input_shape == d.input_shape
    assert all(len(s.input_shape) >= 1 for s in DATASETS.values())
