"""minode.mnist: IDX reading and writing, the bundled MNIST subset and the --full download path
(offline, with urlopen replaced)."""
import gzip
import hashlib
import io
import os
import re
import urllib.error

import numpy
import pytest

from minode import mnist

README_PATH = os.path.join(mnist.BUNDLED_MNIST_DIR, "README.md")


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("file_name", ["images-idx3-ubyte.gz", "images-idx3-ubyte"])
def test_idx_round_trip_keeps_uint8_images(tmp_path, file_name):
    images = numpy.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=numpy.uint8)
    path = tmp_path / file_name
    mnist.write_idx(path, images)
    loaded = mnist.read_idx(path)
    assert loaded.dtype == numpy.uint8 and loaded.shape == (5, 28, 28)
    numpy.testing.assert_array_equal(loaded, images)


@pytest.mark.parametrize("file_name", ["labels-idx1-ubyte.gz", "labels-idx1-ubyte"])
def test_idx_round_trip_keeps_uint8_labels(tmp_path, file_name):
    labels = numpy.arange(17, dtype=numpy.uint8) % 10
    path = tmp_path / file_name
    mnist.write_idx(path, labels)
    numpy.testing.assert_array_equal(mnist.read_idx(path), labels)
    assert mnist.read_idx(path).dtype == numpy.uint8


def test_idx_files_use_the_mnist_magic_numbers_and_gzip_only_for_gz_names(tmp_path):
    mnist.write_idx(tmp_path / "images", numpy.zeros((2, 28, 28), numpy.uint8))
    mnist.write_idx(tmp_path / "labels.gz", numpy.zeros(2, numpy.uint8))
    assert (tmp_path / "images").read_bytes()[:4] == (2051).to_bytes(4, "big")
    with gzip.open(tmp_path / "labels.gz", "rb") as file:
        assert file.read(4) == (2049).to_bytes(4, "big")


def test_idx_round_trip_keeps_multibyte_dtypes_in_native_order(tmp_path):
    values = numpy.linspace(-1.0, 1.0, 12).reshape(3, 4)
    mnist.write_idx(tmp_path / "values.gz", values)
    loaded = mnist.read_idx(tmp_path / "values.gz")
    assert loaded.dtype == numpy.float64 and loaded.dtype.isnative
    numpy.testing.assert_array_equal(loaded, values)


def _idx_bytes(magic, shape, payload):
    return (magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)
            + payload)


def test_read_idx_rejects_a_bad_magic_number_naming_the_file(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(_idx_bytes(0x12340803, (2,), b"\x00\x01"))
    with pytest.raises(ValueError, match=r"bad-magic.*bad IDX magic number 0x12340803"):
        mnist.read_idx(path)


def test_read_idx_rejects_an_unsupported_type_code(tmp_path):
    path = tmp_path / "odd-type"
    path.write_bytes(_idx_bytes(0x00000A01, (2,), b"\x00\x01"))
    with pytest.raises(ValueError, match=r"odd-type.*unsupported IDX type code 0x0a"):
        mnist.read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_a_truncated_file_with_the_byte_counts(tmp_path, compress):
    content = _idx_bytes(2051, (3, 28, 28), bytes(3 * 28 * 28 - 5))
    path = tmp_path / "truncated.gz"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=r"truncated\.gz.*truncated.*expected 2352 bytes, "
                                         r"got 2347"):
        mnist.read_idx(path)


def test_read_idx_rejects_a_truncated_header(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes((2051).to_bytes(4, "big") + (3).to_bytes(4, "big"))
    with pytest.raises(ValueError, match=r"short-header.*truncated IDX header"):
        mnist.read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "labels-with-tail"
    path.write_bytes(_idx_bytes(2049, (4,), bytes(4) + b"extra"))
    with pytest.raises(ValueError, match=r"labels-with-tail.*5 trailing bytes"):
        mnist.read_idx(path)


def test_write_idx_refuses_dtypes_idx_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store dtype int64"):
        mnist.write_idx(tmp_path / "x", numpy.zeros(3, numpy.int64))


# ---------------------------------------------------------------------------------------------
# MNIST, bundled subset
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled_mnist():
    return mnist.load_mnist()


def test_bundled_mnist_has_8000_train_and_2000_test_digits(bundled_mnist):
    x_train, y_train, x_test, y_test = bundled_mnist
    assert x_train.shape == (8000, 1, 28, 28) and x_test.shape == (2000, 1, 28, 28)
    assert y_train.shape == (8000,) and y_test.shape == (2000,)
    assert x_train.dtype == x_test.dtype == numpy.float32
    assert y_train.dtype == y_test.dtype == numpy.int64


def test_bundled_mnist_images_lie_in_unit_interval_and_labels_are_digits(bundled_mnist):
    x_train, y_train, x_test, y_test = bundled_mnist
    for images in (x_train, x_test):
        assert images.min() == 0.0 and images.max() == 1.0
    for labels in (y_train, y_test):
        assert set(numpy.unique(labels)) == set(range(10))


def test_bundled_mnist_test_class_counts_match_its_readme(bundled_mnist):
    readme = open(README_PATH, encoding="utf-8").read()
    stated = re.search(r"Class counts in the 2,000 test digits: ([\d ]+)", readme).group(1)
    assert [int(count) for count in stated.split()] == [213, 202, 198, 185, 191, 180, 199, 216,
                                                        204, 212]
    counts = numpy.bincount(bundled_mnist[3], minlength=10)
    assert counts.tolist() == [int(count) for count in stated.split()]


def test_bundled_mnist_files_match_the_sha256_sums_in_its_readme():
    readme = open(README_PATH, encoding="utf-8").read()
    sums = dict((name, digest) for digest, name in
                re.findall(r"^([0-9a-f]{64})\s+(\S+)$", readme, flags=re.MULTILINE))
    assert sorted(sums) == sorted(mnist.MNIST_FULL_FILES)
    for name, digest in sums.items():
        with open(os.path.join(mnist.BUNDLED_MNIST_DIR, name), "rb") as file:
            assert hashlib.sha256(file.read()).hexdigest() == digest, name


def test_load_mnist_without_normalize_returns_raw_pixels(bundled_mnist):
    x_train, y_train, _, _ = mnist.load_mnist(normalize=False)
    assert x_train.dtype == numpy.uint8 and x_train.shape == (8000, 28, 28)
    numpy.testing.assert_array_equal(x_train[:, None] / numpy.float32(255), bundled_mnist[0])


def test_load_mnist_reads_raw_files_from_root(tmp_path):
    images = numpy.arange(3 * 28 * 28, dtype=numpy.uint32).reshape(3, 28, 28) % 256
    for prefix in ("train", "t10k"):
        mnist.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images.astype(numpy.uint8))
        mnist.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte",
                        numpy.array([7, 0, 9], numpy.uint8))
    x_train, y_train, x_test, y_test = mnist.load_mnist(tmp_path)
    assert x_train.shape == x_test.shape == (3, 1, 28, 28)
    assert y_test.tolist() == [7, 0, 9]


def test_load_mnist_rejects_image_and_label_counts_that_disagree(tmp_path):
    for prefix in ("train", "t10k"):
        mnist.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                        numpy.zeros((3, 28, 28), numpy.uint8))
        mnist.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz",
                        numpy.zeros(2, numpy.uint8))
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        mnist.load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# MNIST, full download (no network: urlopen is replaced)
# ---------------------------------------------------------------------------------------------

def test_full_mnist_without_network_raises_a_clear_runtime_error(tmp_path, monkeypatch):
    def no_network(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError, match=r"could not download .*\(no network\?\); the bundled "
                                           r"10k subset works offline: drop --full"):
        mnist.load_mnist(full=True, cache_dir=tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_full_mnist_with_a_wrong_checksum_raises_and_keeps_nothing(tmp_path, monkeypatch):
    requested = []

    def wrong_bytes(url, timeout=None):
        requested.append(url)
        return io.BytesIO(b"these are not the MNIST bytes you are looking for")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", wrong_bytes)
    with pytest.raises(RuntimeError, match="SHA-256 is not the expected"):
        mnist.load_mnist(full=True, cache_dir=tmp_path)
    assert os.listdir(tmp_path) == []
    assert requested == [mirror + "train-images-idx3-ubyte.gz"
                         for mirror in mnist.MNIST_MIRRORS]


def test_full_mnist_keeps_verified_downloads_and_reads_them(tmp_path, monkeypatch):
    # Serve the bundled subset's files as if they were the full ones, with their real sums.
    served = {}
    for name in mnist.MNIST_FULL_FILES:
        with open(os.path.join(mnist.BUNDLED_MNIST_DIR, name), "rb") as file:
            served[name] = file.read()
    monkeypatch.setattr(mnist, "MNIST_FULL_FILES",
                        {name: (hashlib.sha256(content).hexdigest(), len(content))
                         for name, content in served.items()})
    monkeypatch.setattr(mnist.urllib.request, "urlopen",
                        lambda url, timeout=None: io.BytesIO(served[url.rsplit("/", 1)[1]]))
    x_train, _, x_test, _ = mnist.load_mnist(full=True, cache_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(served)
    assert x_train.shape == (8000, 1, 28, 28) and x_test.shape == (2000, 1, 28, 28)

    def must_not_download(url, timeout=None):
        raise AssertionError(f"downloaded {url} although the cache was complete")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", must_not_download)
    mnist.load_mnist(full=True, cache_dir=tmp_path)
