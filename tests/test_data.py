"""Tests of the data layer (experiments/data/) against the staged shared/data folder.

Every loader is called with ``download=False`` so nothing touches the network; the download path
is exercised with a ``file://`` URL and a monkeypatched ``urlopen``. Large sets (protein, kin40k)
are loaded once per module.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import data as D

NO_NET = {"download": False}


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """No $VBZOO_DATA_DIR and an empty download cache under tmp_path; returns the cache."""
    cache = tmp_path / "cache"
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(cache))
    return cache


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pin(monkeypatch, relpath: str, path: Path) -> None:
    """Point FILES[relpath] at the sha256 of a fabricated file (checksums are verified first)."""
    monkeypatch.setitem(D.FILES, relpath, D.RemoteFile(D.FILES[relpath].url, _sha256(path)))


def _place(root: Path, relpath: str, content: bytes) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# ---------------------------------------------------------------------------------------------
# The file table
# ---------------------------------------------------------------------------------------------


def test_files_table_matches_sha256sums_and_urls_are_pinned(data_dir):
    sums = dict(reversed(line.split()) for line in (data_dir / "SHA256SUMS").read_text()
                .splitlines() if line.strip())
    assert len(D.FILES) == 386
    for rel, remote in D.FILES.items():
        assert sums[rel] == remote.sha256, rel
        assert remote.url.startswith("https://"), rel
        if "raw.githubusercontent.com" in remote.url:
            commit = remote.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0, remote.url
    for info in D.DATASETS.values():
        assert set(info.files) <= set(D.FILES)
    needed = {f for info in D.DATASETS.values() for f in info.files}
    assert needed == set(D.FILES)
    assert D.DATASETS["synthetic"].files == ()


def test_every_staged_file_resolves_and_verifies(data_dir, isolated):
    for rel in D.FILES:
        assert D.resolve(rel, data_dir=data_dir, download=False) == data_dir / rel
    assert [p.name for p in D.fetch("frey_face", data_dir=data_dir, download=False)] == [
        "frey_rawface.mat"]


def test_env_var_is_searched(data_dir, isolated, monkeypatch):
    monkeypatch.setenv(D.DATA_DIR_ENV, str(data_dir))
    assert D.resolve("co2/co2_mm_mlo.txt", download=False) == data_dir / "co2/co2_mm_mlo.txt"


def test_unknown_file_is_a_value_error():
    with pytest.raises(ValueError, match="unknown data file"):
        D.resolve("mnist/nope.gz", download=False)


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_mnist(data_dir, split, n):
    x, y = D.load_mnist(split, data_dir=data_dir, **NO_NET)
    assert x.shape == (n, 28, 28) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(torch.bincount(y, minlength=10).nonzero().squeeze(1), torch.arange(10))
    if split == "train":
        assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels


@pytest.mark.parametrize("split, n", [("train", 50000), ("valid", 10000), ("test", 10000)])
def test_binarized_mnist(data_dir, split, n):
    x = D.load_binarized_mnist(split, data_dir=data_dir, **NO_NET)
    assert x.shape == (n, 784) and x.dtype == torch.float32 and x.is_contiguous()
    assert ((x == 0) | (x == 1)).all() and x.min() == 0 and x.max() == 1
    assert 0.05 < x.mean() < 0.25  # MNIST ink fraction


def test_binarized_mnist_accepts_larochelle_text_format(tmp_path, isolated, monkeypatch):
    rel = "binarized_mnist/binarized_mnist_valid.amat"
    monkeypatch.setitem(D._BINARIZED_COUNTS, "valid", 20)  # keep the text file small
    rows = np.random.default_rng(0).integers(0, 2, size=(20, 784))
    path = tmp_path / "text"
    path.mkdir()
    np.savetxt(path / "rows.txt", rows, fmt="%d")
    f = _place(path, rel, (path / "rows.txt").read_bytes())
    _pin(monkeypatch, rel, f)
    x = D.load_binarized_mnist("valid", data_dir=path, **NO_NET)
    assert torch.equal(x, torch.from_numpy(rows.astype(np.float32)))


def test_frey_face(data_dir):
    x = D.load_frey_face(data_dir=data_dir, **NO_NET)
    assert x.shape == (1965, 28, 20) and x.dtype == torch.float32
    assert 0 < x.min() < x.max() < 1  # observed grey levels 8..238


UCI_SHAPES = {  # folder: (rows, features, n_splits)
    "bostonHousing": (506, 13, 20), "concrete": (1030, 8, 20), "energy": (768, 8, 20),
    "kin8nm": (8192, 8, 20), "naval-propulsion-plant": (11934, 16, 20),
    "power-plant": (9568, 4, 20), "protein-tertiary-structure": (45730, 9, 5),
    "wine-quality-red": (1599, 11, 20), "yacht": (308, 6, 20),
}


@pytest.fixture(scope="module", params=list(UCI_SHAPES))
def uci_raw(request, data_dir):
    """Split 0 of each UCI set, unstandardised (loaded once per module)."""
    return D.load_uci(request.param, 0, standardize=False, data_dir=data_dir, **NO_NET)


def test_uci_shapes_splits_and_train_statistics(uci_raw, data_dir):
    r = uci_raw
    rows, dim, n_splits = UCI_SHAPES[r.name]
    assert D.UCI_DATASETS[r.name] == n_splits
    assert r.x_train.shape == (r.n_train, dim) and r.x_test.shape == (r.n_test, dim)
    assert r.y_train.shape == (r.n_train,) and r.y_test.shape == (r.n_test,)
    assert r.n_train + r.n_test == rows
    assert r.x_train.dtype == r.y_test.dtype == torch.float32
    base = data_dir / "uci" / r.name / "data"
    train = np.loadtxt(base / "index_train_0.txt", dtype=np.int64)
    test = np.loadtxt(base / "index_test_0.txt", dtype=np.int64)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(rows))
    # statistics come from the training split (population std), not from the test split
    x_tr, y_tr = r.x_train.double(), r.y_train.double()
    expected_std = x_tr.std(0, correction=0)
    expected_std[x_tr.amax(0) == x_tr.amin(0)] = 1.0
    torch.testing.assert_close(r.x_mean.double(), x_tr.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r.x_std.double(), expected_std, rtol=1e-4, atol=1e-6)
    assert r.y_mean == pytest.approx(y_tr.mean().item(), rel=1e-5)
    assert r.y_std == pytest.approx(y_tr.std(correction=0).item(), rel=1e-4)
    assert r.y_mean != pytest.approx(r.y_test.double().mean().item(), rel=1e-6)
    assert not torch.allclose(r.x_mean.double(), r.x_test.double().mean(0), rtol=1e-6)
    assert not r.standardized and torch.equal(r.unstandardize_y(r.y_test), r.y_test)


@pytest.mark.parametrize("name", ["yacht", "naval-propulsion-plant"])
def test_uci_standardisation(data_dir, name):
    raw = D.load_uci(name, 0, standardize=False, data_dir=data_dir, **NO_NET)
    std = D.load_uci(name, 0, data_dir=data_dir, **NO_NET)
    assert std.standardized
    torch.testing.assert_close(std.x_mean, raw.x_mean)
    varying = raw.x_std != 1
    torch.testing.assert_close(std.x_train.mean(0), torch.zeros(raw.input_dim), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(std.x_train[:, varying].std(0, correction=0),
                               torch.ones(int(varying.sum())), atol=1e-4, rtol=0)
    torch.testing.assert_close(std.x_test, (raw.x_test - raw.x_mean) / raw.x_std)
    torch.testing.assert_close(std.unstandardize_y(std.y_test), raw.y_test)
    torch.testing.assert_close(std.unstandardize_scale(torch.tensor(1.0)),
                               torch.tensor(raw.y_std))
    if name == "naval-propulsion-plant":  # two constant columns (T1, P1) get std 1
        assert int((~varying).sum()) == 2
        assert torch.all(std.x_train[:, ~varying] == 0)


def test_uci_names_and_split_range(data_dir):
    r = D.load_uci("boston", 19, data_dir=data_dir, **NO_NET)
    assert r.name == "bostonHousing" and r.split == 19
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        D.load_uci("protein", 5, data_dir=data_dir, **NO_NET)
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        D.load_uci("yacht", -1, data_dir=data_dir, **NO_NET)
    with pytest.raises(ValueError, match="unknown UCI dataset"):
        D.load_uci("iris", data_dir=data_dir, **NO_NET)


UCI_LARGE_SHAPES = {"kin40k": (40000, 8), "elevators": (16599, 18), "pol": (15000, 26),
                    "bike": (17379, 17), "protein": (45730, 9)}


@pytest.fixture(scope="module", params=list(UCI_LARGE_SHAPES))
def uci_large_fold0(request, data_dir):
    return D.load_uci_large(request.param, 0, data_dir=data_dir, **NO_NET)


def test_uci_large_shapes(uci_large_fold0):
    r = uci_large_fold0
    rows, dim = UCI_LARGE_SHAPES[r.name]
    assert D.UCI_LARGE_DATASETS[r.name] == (rows, dim)
    assert r.input_dim == dim and r.n_train + r.n_test == rows
    assert abs(r.n_test - rows / 10) <= 1  # 10 folds
    assert abs(r.y_train.mean()) < 1e-4 and abs(r.y_train.std(correction=0) - 1) < 1e-4


def test_uci_large_folds_disjoint_and_covering(data_dir):
    mask = np.loadtxt(data_dir / "uci-large/pol/test_mask.csv.gz", delimiter=",", dtype=int)
    raw = np.loadtxt(data_dir / "uci-large/pol/data.csv.gz", delimiter=",", dtype=np.float32)
    assert mask.shape == (15000, 10) and np.all(mask.sum(1) == 1)  # each row in one test fold
    for k in (0, 9):
        r = D.load_uci_large("pol", k, standardize=False, data_dir=data_dir, **NO_NET)
        test = mask[:, k] == 1
        assert r.split == k
        assert np.array_equal(r.x_test.numpy(), raw[test, :-1])
        assert np.array_equal(r.y_train.numpy(), raw[~test, -1])
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        D.load_uci_large("pol", 10, data_dir=data_dir, **NO_NET)


def test_uci_large_80_20_protocol(data_dir):
    r = D.load_uci_large("elevators", protocol="80/20", data_dir=data_dir, **NO_NET)
    raw = D.load_uci_large("elevators", protocol="80/20", standardize=False, data_dir=data_dir,
                           **NO_NET)
    assert (r.n_train, r.n_test) == (13279, 3320)  # floor(0.8 * 16599)
    varying = raw.x_train.amax(0) > raw.x_train.amin(0)
    assert torch.all(r.x_train.amin(0)[varying] == -1)
    assert torch.allclose(r.x_train.amax(0)[varying], torch.ones(int(varying.sum())))
    torch.testing.assert_close(r.x_test * r.x_std + r.x_mean, raw.x_test, rtol=1e-5, atol=1e-5)
    assert abs(r.y_train.mean()) < 1e-4 and abs(r.y_train.std(correction=0) - 1) < 1e-4
    assert torch.equal(raw.y_test, raw.unstandardize_y(raw.y_test))
    with pytest.raises(ValueError, match="fold must be 0"):
        D.load_uci_large("elevators", 1, protocol="80/20", data_dir=data_dir, **NO_NET)
    with pytest.raises(ValueError, match="protocol"):
        D.load_uci_large("elevators", protocol="70/30", data_dir=data_dir, **NO_NET)


def test_mushroom(data_dir):
    x, y, names = D.load_mushroom(data_dir=data_dir, **NO_NET)
    assert x.shape == (8124, len(names)) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.sum()) == 3916  # poisonous = 1
    assert torch.all(x.sum(1) == 22)  # one hot per attribute
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert "stalk-root=?" in names and "veil-type=p" in names
    assert int(x[:, names.index("stalk-root=?")].sum()) == 2480


def test_co2(data_dir):
    co2 = D.load_co2(data_dir=data_dir, **NO_NET)
    assert len(co2) == 787 and co2.t.shape == co2.ppm.shape == (787,)
    assert co2.t.dtype == co2.ppm.dtype == torch.float64
    assert torch.all(co2.t[1:] > co2.t[:-1])
    assert 1958 < co2.t[0] < 1958.5 and 2023.5 < co2.t[-1] < 2024
    assert 310 < co2.ppm.min() and co2.ppm.max() < 430


def test_blundell_toy_deterministic_and_in_range():
    state = torch.random.get_rng_state()
    x, y = D.blundell_toy(200, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    x2, y2 = D.blundell_toy(200, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, D.blundell_toy(200, seed=4)[0])
    assert x.shape == (200, 1) and y.shape == (200,) and x.dtype == y.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 0.5
    xs, ys = D.blundell_toy(50, x_range=(-0.2, 1.2), noise_std=0.0, seed=0)
    assert xs.min() >= -0.2 and xs.max() <= 1.2

    def curve(u):
        return u + 0.3 * torch.sin(2 * torch.pi * u) + 0.3 * torch.sin(4 * torch.pi * u)

    torch.testing.assert_close(ys, curve(xs[:, 0]))  # noise-free: exactly the curve
    resid = y - curve(x[:, 0])  # eps enters inside the sines: |dy/d eps| <= 1 + 0.6 pi + 1.2 pi
    assert 0.005 < resid.std() and resid.abs().max() < 6 * 0.02 * (1 + 1.8 * torch.pi)


# ---------------------------------------------------------------------------------------------
# Error paths
# ---------------------------------------------------------------------------------------------


def test_missing_file_names_folders_env_var_and_url(tmp_path, isolated, monkeypatch):
    explicit = tmp_path / "explicit"
    with pytest.raises(D.DataFileMissing) as info:
        D.load_frey_face(data_dir=explicit, **NO_NET)
    msg = str(info.value)
    assert "frey/frey_rawface.mat" in msg
    assert str(explicit / "frey/frey_rawface.mat") in msg
    assert str(isolated / "frey/frey_rawface.mat") in msg
    assert D.DATA_DIR_ENV in msg and "is not set" in msg
    assert D.FILES["frey/frey_rawface.mat"].url in msg
    assert "download=False" in msg
    assert info.value.url == D.FILES["frey/frey_rawface.mat"].url
    env_dir = tmp_path / "env"
    monkeypatch.setenv(D.DATA_DIR_ENV, str(env_dir))
    with pytest.raises(D.DataFileMissing, match=str(env_dir / "frey")) as info:
        D.load_frey_face(**NO_NET)
    assert len(info.value.searched) == 2 and isinstance(info.value, D.DataError)


def test_checksum_mismatch_names_expected_and_actual(data_dir, tmp_path, isolated, monkeypatch):
    rel = "co2/co2_mm_mlo.txt"
    content = bytearray((data_dir / rel).read_bytes())
    content[-3] = ord("9") if content[-3] != ord("9") else ord("8")
    bad = _place(tmp_path / "bad", rel, bytes(content))
    monkeypatch.setenv(D.DATA_DIR_ENV, str(data_dir))  # a good copy exists, but is not used
    with pytest.raises(D.ChecksumMismatch) as info:
        D.load_co2(data_dir=tmp_path / "bad", **NO_NET)
    msg = str(info.value)
    assert D.FILES[rel].sha256 in msg and _sha256(bad) in msg
    assert str(bad) in msg and "Delete it" in msg
    assert info.value.expected == D.FILES[rel].sha256 and info.value.actual == _sha256(bad)


def test_digest_cache_notices_a_changed_file(data_dir, tmp_path, isolated):
    rel = "uci/yacht/data/index_test_0.txt"
    copy = _place(tmp_path, rel, (data_dir / rel).read_bytes())
    assert D.resolve(rel, data_dir=tmp_path, download=False) == copy
    copy.write_bytes(copy.read_bytes().replace(b"1", b"2", 1))
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(D.ChecksumMismatch):
        D.resolve(rel, data_dir=tmp_path, download=False)


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return gzip.compress(header + payload)


def test_truncated_idx_is_data_corrupt(data_dir, tmp_path, isolated, monkeypatch):
    short = _place(tmp_path, "short.gz", _idx(0x803, (60000, 28, 28), bytes(1234 * 784 + 5)))
    with pytest.raises(D.DataCorrupt, match="IDX header says 60000 images but file holds 1234"):
        D.read_idx(short)
    cut = _place(tmp_path, "cut.gz", short.read_bytes()[:200])
    with pytest.raises(D.DataCorrupt, match="gzip"):
        D.read_idx(cut)
    wrong = _place(tmp_path, "wrong.gz", _idx(0x801, (3,), bytes(3)))
    with pytest.raises(D.DataCorrupt, match="expected 0x00000803"):
        D.read_idx(wrong, expected_magic=0x803)
    ok = D.read_idx(_place(tmp_path, "ok.gz", _idx(0x803, (2, 2, 3), bytes(range(12)))))
    assert ok.shape == (2, 2, 3) and ok.dtype == np.uint8 and ok[1, 1, 2] == 11
    # end to end through load_mnist: fabricated images (pinned), real labels
    root = tmp_path / "data"
    images = _place(root, "mnist/t10k-images-idx3-ubyte.gz", short.read_bytes())
    _pin(monkeypatch, "mnist/t10k-images-idx3-ubyte.gz", images)
    shutil.copy(data_dir / "mnist/t10k-labels-idx1-ubyte.gz", root / "mnist")
    with pytest.raises(D.DataCorrupt, match=r"t10k-images.*IDX header says 60000 images"):
        D.load_mnist("test", data_dir=root, **NO_NET)


def test_unparsable_uci_data_is_data_corrupt(data_dir, tmp_path, isolated, monkeypatch):
    rel = "uci/yacht/data/data.txt"
    lines = (data_dir / rel).read_text().splitlines()
    lines[7] = lines[7].replace(" ", " oops ", 1)
    bad = _place(tmp_path, rel, "\n".join(lines).encode())
    _pin(monkeypatch, rel, bad)
    monkeypatch.setenv(D.DATA_DIR_ENV, str(data_dir))  # the other yacht files come from here
    with pytest.raises(D.DataCorrupt, match=r"data\.txt.*cannot parse") as info:
        D.load_uci("yacht", data_dir=tmp_path, **NO_NET)
    assert info.value.path == bad


def test_mushroom_wrong_column_count_is_data_corrupt(data_dir, tmp_path, isolated, monkeypatch):
    rel = "mushroom/agaricus-lepiota.data"
    lines = (data_dir / rel).read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]
    bad = _place(tmp_path, rel, ("\n".join(lines) + "\n").encode())
    _pin(monkeypatch, rel, bad)
    with pytest.raises(D.DataCorrupt, match="line 3 has 22 comma-separated fields, expected 23"):
        D.load_mushroom(data_dir=tmp_path, **NO_NET)


def test_download_failure_is_data_file_missing(isolated, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    rel = "co2/co2_mm_mlo.txt"
    with pytest.raises(D.DataFileMissing) as info:
        D.load_co2(download=True)
    msg = str(info.value)
    assert D.FILES[rel].url in msg and "network is unreachable" in msg
    assert isinstance(info.value.__cause__, urllib.error.URLError)
    assert not any(p.is_file() for p in isolated.rglob("*"))  # no partial file left behind


def test_download_from_file_url_into_cache(data_dir, isolated, monkeypatch):
    rel = "co2/co2_mm_mlo.txt"
    source = data_dir / rel
    monkeypatch.setitem(D.FILES, rel, D.RemoteFile(source.as_uri(), D.FILES[rel].sha256))
    co2 = D.load_co2(download=True)
    cached = isolated / rel
    assert len(co2) == 787 and cached.read_bytes() == source.read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # temp file replaced
    assert D.resolve(rel, download=False) == cached  # found in the cache next time
    # a download whose bytes do not match is rejected and never lands in the cache
    other = "frey/frey_rawface.mat"
    monkeypatch.setitem(D.FILES, other, D.RemoteFile(source.as_uri(), D.FILES[other].sha256))
    with pytest.raises(D.ChecksumMismatch, match=D.FILES[other].sha256):
        D.resolve(other, download=True)
    assert not (isolated / "frey").exists() or not any((isolated / "frey").iterdir())
