"""MNIST for the ODE-Net experiment (Chen et al. 2018, sec. 3, Table 1): the IDX file format and
the loader of the bundled 10k subset or the full set.

MNIST is stored in the IDX format of LeCun et al.: a 4-byte magic number
``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values, big-endian,
in C order. `read_idx` and `write_idx` implement it; `load_mnist` reads the four files of the
8,000 / 2,000 subset that ships inside the package (``minode/data/mnist-10k``, see its README) or,
with ``full=True``, downloads and checks the original 60,000 / 10,000 files.

Everything here runs on the host and returns NumPy arrays; a model moves them to the active
backend with ``minode.backend.asarray``.
"""
import gzip
import hashlib
import http.client
import os
import urllib.request

import numpy
from tqdm import tqdm

from minode.files import atomic_file

__all__ = ["read_idx", "write_idx", "load_mnist", "BUNDLED_MNIST_DIR", "MNIST_MIRRORS",
           "MNIST_FULL_FILES"]

BUNDLED_MNIST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist-10k")
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "minode", "mnist")
DOWNLOAD_TIMEOUT_S = 30

# Public mirrors of the original MNIST files (yann.lecun.com no longer serves them reliably);
# tried in this order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 and size in bytes of the four original gz files of the full MNIST. These are the
# well-known published sums, the same ones TensorFlow Datasets and torchvision-style loaders check
# (for example the ruby port of torchvision, torch.rb, lists them next to the ossci mirror); they
# could not be recomputed here because this machine has no internet access.
MNIST_FULL_FILES = {
    "train-images-idx3-ubyte.gz":
        ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    "train-labels-idx1-ubyte.gz":
        ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    "t10k-images-idx3-ubyte.gz":
        ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    "t10k-labels-idx1-ubyte.gz":
        ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
}

_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS = MNIST_FULL_FILES

# IDX type byte -> element type. Values are big-endian ('>') on disk.
_IDX_DTYPES = {
    0x08: numpy.dtype("u1"),
    0x09: numpy.dtype("i1"),
    0x0B: numpy.dtype(">i2"),
    0x0C: numpy.dtype(">i4"),
    0x0D: numpy.dtype(">f4"),
    0x0E: numpy.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------

def read_idx(path):
    """Read an IDX file (gzip-compressed or raw) into a NumPy array of its own dtype and shape.

    Compression is recognised by the gzip magic bytes, not by the file name. The magic number
    ``0x0000TTNN`` gives the element type ``TT`` (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64) and the number of dimensions ``NN``; MNIST images are 0x00000803
    (2051), labels 0x00000801 (2049). The payload must hold exactly the number of bytes the header
    announces.

    Raises ``ValueError`` naming ``path`` for a bad magic number, an unsupported type code, a
    truncated file ("expected N bytes, got M") or trailing bytes after the data.
    """
    with open(path, "rb") as file:
        content = file.read()
    if content[:2] == _GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: not a valid gzip stream ({error})") from error

    if len(content) < 4:
        raise ValueError(f"{path}: truncated IDX file: expected at least 4 bytes of magic "
                         f"number, got {len(content)}")
    magic = int.from_bytes(content[:4], "big")
    zero_bytes, type_code, ndim = content[:2], content[2], content[3]
    if zero_bytes != b"\x00\x00" or ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{magic:08x}: expected 0x0000TTNN with "
                         "a type code TT and NN >= 1 dimensions (MNIST images are 0x00000803, "
                         "labels 0x00000801)")
    if type_code not in _IDX_DTYPES:
        supported = ", ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
        raise ValueError(f"{path}: unsupported IDX type code 0x{type_code:02x} in magic number "
                         f"0x{magic:08x} (supported: {supported})")

    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise ValueError(f"{path}: truncated IDX header: expected {header_size} bytes for "
                         f"{ndim} dimensions, got {len(content)}")
    shape = tuple(int.from_bytes(content[4 + 4 * axis: 8 + 4 * axis], "big")
                  for axis in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = int(numpy.prod(shape)) * dtype.itemsize
    got = len(content) - header_size
    if got < expected:
        raise ValueError(f"{path}: truncated IDX data for shape {shape}: expected {expected} "
                         f"bytes, got {got}")
    if got > expected:
        raise ValueError(f"{path}: {got - expected} trailing bytes after the {expected} bytes of "
                         f"IDX data for shape {shape}")
    values = numpy.frombuffer(content, dtype=dtype, count=int(numpy.prod(shape)),
                              offset=header_size)
    return values.reshape(shape).astype(dtype.newbyteorder("="))  # native order, writable copy


def write_idx(path, array):
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The dtype must be one IDX can hold (uint8, int8, int16, int32, float32, float64) and the array
    needs at least one dimension. The file is written to a temporary name and moved into place, so
    a reader never sees half of it.
    """
    array = numpy.asarray(array)
    type_codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in type_codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{sorted(str(dtype) for dtype in type_codes)}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got an array with {array.ndim}")
    type_code = type_codes[native]
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    content = header + numpy.ascontiguousarray(array, dtype=_IDX_DTYPES[type_code]).tobytes()
    if str(path).endswith(".gz"):
        content = gzip.compress(content, mtime=0)  # mtime=0: same array, same bytes
    with atomic_file(path) as file:
        file.write(content)


# ----------------------------------------------------------------------------------------------
# MNIST
# ----------------------------------------------------------------------------------------------

def load_mnist(root=None, *, full=False, cache_dir=None, normalize=True):
    """MNIST as NumPy arrays ``(x_train, y_train, x_test, y_test)``.

    By default this reads the 8,000 / 2,000 subset bundled with minode: no network needed.

    Args:
        root: a directory holding the four MNIST IDX files (``train-images-idx3-ubyte`` and so on,
            gzip-compressed with ``.gz`` or raw) to read instead of the bundled subset.
        full: download the complete 60,000 / 10,000 MNIST from `MNIST_MIRRORS` into ``cache_dir``
            (once; later calls reuse the files) and check each file's SHA-256 against
            `MNIST_FULL_FILES`. Raises ``RuntimeError`` when nothing can be downloaded.
        cache_dir: where ``full=True`` keeps the files; default ``~/.cache/minode/mnist``.
        normalize: return images as float32 in [0, 1] of shape (N, 1, 28, 28), one channel as a
            convolution expects; ``False`` returns the raw uint8 pixels, shape (N, 28, 28).

    Labels are int64 digits 0-9. ``ValueError`` when a file is malformed or images and labels
    disagree in number.
    """
    if full and root is not None:
        raise ValueError("give either root (read local files) or full=True (download), not both")
    if full:
        root = _download_full_mnist(cache_dir)
    elif root is None:
        root = BUNDLED_MNIST_DIR
    x_train, y_train = _read_split(root, _TRAIN_IMAGES, _TRAIN_LABELS)
    x_test, y_test = _read_split(root, _TEST_IMAGES, _TEST_LABELS)
    if normalize:
        x_train, x_test = (_normalize(images) for images in (x_train, x_test))
    return x_train, y_train, x_test, y_test


def _read_split(root, images_name, labels_name):
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, checked against each other."""
    images_path, labels_path = (_find_idx_file(root, name) for name in (images_name, labels_name))
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != numpy.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected uint8 images of shape (N, 28, 28), got "
                         f"{images.dtype} {images.shape}")
    if labels.dtype != numpy.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
    return images, labels.astype(numpy.int64)


def _find_idx_file(root, gz_name):
    for name in (gz_name, gz_name[:-len(".gz")]):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no {gz_name} (or uncompressed {gz_name[:-len('.gz')]}) in {root}")


def _normalize(images):
    return (images.astype(numpy.float32) / numpy.float32(255.0))[:, None, :, :]


def _download_full_mnist(cache_dir):
    """Make sure the four full-MNIST files sit, verified, in ``cache_dir``; return the directory."""
    cache_dir = os.path.expanduser(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR)
    os.makedirs(cache_dir, exist_ok=True)
    for name, (sha256, size) in MNIST_FULL_FILES.items():
        path = os.path.join(cache_dir, name)
        if os.path.isfile(path) and _sha256_of_file(path) == sha256:
            continue
        _download_verified(name, path, sha256, size)
    return cache_dir


def _download_verified(name, path, sha256, size):
    """Try each mirror until one serves ``name`` with the right SHA-256; move it to ``path``."""
    failures, mismatches = [], []
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        try:
            actual = _download_to(url, path, sha256, size)
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
            failures.append(f"{url}: {error}")
            continue
        if actual == sha256:
            return
        mismatches.append(f"{url} gave SHA-256 {actual}")
    if mismatches:
        raise RuntimeError(f"downloaded {name} but its SHA-256 is not the expected {sha256} "
                           f"({'; '.join(mismatches)}); nothing was kept in the cache")
    raise RuntimeError(f"could not download {name} from any mirror ({'; '.join(failures)}) "
                       "(no network?); the bundled 10k subset works offline: drop --full")


class _WrongChecksum(Exception):
    """Raised inside `atomic_file` to discard a download whose SHA-256 is not the expected one."""


def _download_to(url, path, sha256, size):
    """Stream ``url`` into a temporary file beside ``path``, hashing as it goes.

    Only a file whose SHA-256 equals ``sha256`` replaces ``path`` (`minode.files.atomic_file`);
    otherwise the temporary file is removed. Returns the SHA-256 of the bytes received.
    """
    digest = hashlib.sha256()
    try:
        with atomic_file(path) as file, \
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                tqdm(total=size, unit="B", unit_scale=True, desc=os.path.basename(path),
                     disable=None, leave=False) as progress:
            while chunk := response.read(1 << 16):
                file.write(chunk)
                digest.update(chunk)
                progress.update(len(chunk))
            if digest.hexdigest() != sha256:
                raise _WrongChecksum
    except _WrongChecksum:
        pass
    return digest.hexdigest()


def _sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
