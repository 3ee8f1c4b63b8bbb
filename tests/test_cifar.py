"""CIFAR-10 from the user's files: both published formats and the archives, each checked; a wrong
checksum or a planted pickle is refused without running anything; missing files say where to get them."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from lottery.cli import main
from lottery.data import cifar10
from lottery.errors import DataError, DataWarning

NAMES = [*cifar10.TRAIN, cifar10.TEST]


def batches(records=4, seed=0):
    """Tiny batches: name → (images [records, 3, 32, 32] uint8, labels)."""
    rng = np.random.default_rng(seed)
    return {n: (rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, records).astype(np.uint8))
            for n in NAMES}


def binary_files(content):
    return {n: b"".join(bytes([int(y)]) + x.tobytes() for x, y in zip(*content[n])) for n in NAMES}


def python_files(content):
    """Pickled as the Python version is: a dict of bytes keys, uint8 data [N, 3072], a list of labels."""
    out = {}
    for n in NAMES:
        x, y = content[n]
        out[n] = pickle.dumps({b"batch_label": n.encode(), b"labels": [int(v) for v in y],
                               b"data": x.reshape(len(x), -1), b"filenames": [b"a.png"] * len(x)}, protocol=2)
    return out


def md5s(files):
    return {n: hashlib.md5(d).hexdigest() for n, d in files.items()}


def test_both_formats_read_the_same_images_and_labels():
    content = batches()
    with pytest.warns(DataWarning, match="4 records, not the published 10,000"):
        a = cifar10.from_binary(binary_files(content))
    py = python_files(content)
    b = cifar10.from_python(py, checksums=md5s(py), records=4)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert a["train_images"].shape == (20, 3, 32, 32) and a["test_labels"].shape == (4,)
    assert torch.equal(a["train_images"][:4], torch.from_numpy(content["data_batch_1"][0]))


def test_a_wrong_checksum_is_refused():
    py = python_files(batches())
    sums = md5s(py)
    sums["data_batch_3"] = "0" * 32
    with pytest.raises(DataError, match="data_batch_3: MD5 .* does not match the published 0+; refusing"):
        cifar10.from_python(py, checksums=sums, records=4)
    with pytest.raises(DataError, match="does not match the published"):
        cifar10.from_python(py, records=4)  # the real published checksums cannot match these


def test_a_planted_pickle_is_refused_without_running_anything(tmp_path):
    proof = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(proof), "w"))
    py = python_files(batches())
    py["data_batch_2"] = pickle.dumps({b"data": Payload()}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        cifar10.from_python(py, checksums=md5s(py), records=4)  # even with a checksum that matches it
    assert not proof.exists(), "nothing in the pickle ran"


def test_files_that_are_not_batches_are_refused():
    content = batches()
    files = binary_files(content)
    files["test_batch"] = files["test_batch"][:-1]
    with pytest.raises(DataError, match="not whole records"):
        cifar10.from_binary(files)
    bad = binary_files(content)
    bad["data_batch_1"] = bytes([12]) + bad["data_batch_1"][1:]
    with pytest.raises(DataError, match="labels above 9"), pytest.warns(DataWarning):
        cifar10.from_binary(bad)
    py = python_files(content)
    py["data_batch_4"] = pickle.dumps({b"data": np.zeros((4, 10), np.uint8), b"labels": [0] * 4}, protocol=2)
    with pytest.raises(DataError, match="is not a CIFAR-10 batch"):
        cifar10.from_python(py, checksums=md5s(py), records=4)


def archive(files, folder):
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return blob.getvalue()


def test_archives_are_checked_and_read_without_extracting():
    py = python_files(batches())
    blob = archive(py, "cifar-10-batches-py")
    read = cifar10.from_archive(blob, "cifar-10-python.tar.gz", hashlib.md5(blob).hexdigest(), md5s(py), 4)
    assert read["train_images"].shape == (20, 3, 32, 32)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: MD5 .* does not match"):
        cifar10.from_archive(blob, "cifar-10-python.tar.gz", cifar10.ARCHIVE_MD5["cifar-10-python.tar.gz"])


def test_missing_files_say_where_to_get_them(tmp_path, capsys):
    assert main(["run", "conv2-cifar10-quick", "--store", str(tmp_path / "s"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "https://www.cs.toronto.edu/~kriz/cifar.html" in err and "--data-dir" in err


def write_binary_folder(root, records=30):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, data in binary_files(batches(records)).items():
        (folder / f"{name}.bin").write_bytes(data)
    return root


@pytest.mark.parametrize("preset", ["conv2-cifar10-quick", "resnet20-cifar10-quick"])
def test_the_cifar_presets_run_end_to_end_on_tiny_files(tmp_path, preset):
    """The plumbing: reading, normalising, augmenting (ResNet-20), pruning the papers' way, the report."""
    root = write_binary_folder(tmp_path / "data")
    args = ["run", preset, "--store", str(tmp_path / "store"), "--data-dir", str(root), "--quiet",
            "--set", "data.validation_size=20", "--set", "train.length=6", "--set", "train.eval_every=3",
            "--set", "train.batch_size=20", "--levels", "2"]
    if preset.startswith("resnet"):
        args += ["--set", "train.milestones=3"]
    assert main(args) == 0
    from lottery.analysis.table import table
    from lottery.store import RunStore

    (run_dir,) = (tmp_path / "store").iterdir()
    df = table(RunStore(run_dir))
    assert set(df.branch) == {"imp", "reinit", "random_prune"} and len(df) == 7
    # level 2, pruned from masks read back from the store: layer order kept (10.weight is the output
    # layer, though "10" sorts before "2": safetensors files list their tensors sorted)
    dense = df[(df.branch == "imp") & (df.level == 2)].iloc[0]
    density = {c[len("density["):-1]: dense[c] for c in df.columns if c.startswith("density[")}
    output = "fc.weight" if preset.startswith("resnet") else "10.weight"
    if preset.startswith("resnet"):
        assert density[output] == 1.0, "global pruning leaves the output layer dense"
        assert dense.fraction_remaining == pytest.approx(0.64, abs=0.01)
    else:
        assert density["0.weight"] == pytest.approx(0.81, abs=0.01) and density["2.weight"] == pytest.approx(0.81, abs=1e-3)
        assert density["6.weight"] == pytest.approx(0.64, abs=1e-3), "convolutions at 10%, fully connected at 20%"
        assert density[output] == pytest.approx(0.81, abs=0.01)
