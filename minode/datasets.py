"""Data for the tutorials: MNIST (bundled 10k subset, or the full set on request) and 2-D spirals.

Everything here runs on the host and returns NumPy arrays; a model moves them to the active
backend with ``minode.backend.asarray``.

MNIST is stored in the IDX format of LeCun et al.: a 4-byte magic number
``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values, big-endian,
in C order. `read_idx` and `write_idx` implement it; `load_mnist` reads the four files of the
8,000 / 2,000 subset that ships inside the package (``minode/data/mnist-10k``, see its README) or,
with ``full=True``, downloads and checks the original 60,000 / 10,000 files.

`make_spirals` builds spiral data in the spirit of the latent ODE experiment (Chen et al. 2018,
Sec. 5.1, Fig. 8): noisy 2-D trajectories, half of them turning clockwise, half counter-clockwise.
Here each spiral solves a random linear ODE, so the data really come from an ODE.
`make_archimedean_spirals` builds the paper's own setup: windows of one Archimedean spiral and of
its mirror image, each starting at a different point.

`make_two_circles` and `make_two_moons` draw the 2-D toy data of the paper's Figure 5 (sec. 4.1,
maximum likelihood), and `two_circles_log_density` / `two_moons_log_density` give the exact
density they are drawn from: the floor of any model's negative log-likelihood.
"""
import dataclasses
import gzip
import hashlib
import http.client
import math
import os
import urllib.error
import urllib.request

import numpy
import scipy.special
from tqdm import tqdm

from minode import backend, ops
from minode.checks import check_nonnegative, check_positive, check_positive_int
from minode.files import atomic_file
from minode.odeint import odeint

__all__ = ["read_idx", "write_idx", "load_mnist", "BUNDLED_MNIST_DIR", "MNIST_MIRRORS",
           "MNIST_FULL_FILES", "Spirals", "make_spirals", "make_two_circles",
           "two_circles_log_density", "make_two_moons", "two_moons_log_density",
           "ArchimedeanSpirals", "make_archimedean_spirals"]

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


# ----------------------------------------------------------------------------------------------
# Spirals (latent ODE tutorial)
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spirals:
    """A batch of 2-D spiral trajectories made by `make_spirals`.

    Attributes:
        times: (n_points,) observation times, from 0 to ``t_max``.
        trajectories: (n_spirals, n_points, 2) the clean solutions z(t).
        observations: (n_spirals, n_points, 2) ``trajectories`` plus Gaussian noise.
        clockwise: (n_spirals,) bool, True where the spiral turns clockwise (x right, y up).
        matrices: (n_spirals, 2, 2) the matrix W of each spiral's ODE dz/dt = W z.
    """
    times: numpy.ndarray
    trajectories: numpy.ndarray
    observations: numpy.ndarray
    clockwise: numpy.ndarray
    matrices: numpy.ndarray


def make_spirals(rng, n_spirals=1000, n_points=200, t_max=6.29 * 5, noise_std=0.02,
                 init_std=2.0):
    """Noisy spirals from random linear ODEs, toy data for the latent ODE (Chen et al. 2018,
    Sec. 5.1, Fig. 8): exactly ``n_spirals // 2`` turn clockwise, the others counter-clockwise.

    Each spiral solves dz/dt = W z from z(0) ~ N(0, init_std^2 I) over ``n_points`` equally spaced
    times in [0, t_max], with::

        W = [[W11, W12],      W11, W22 = -0.1 |N(0,1)| - 0.05   (decay)
             [W21, W22]]      W12 = |N(0,1)|,  W21 = -|N(0,1)|   (rotation)

    Orientation: with W12 > 0 > W21 a point on the positive x axis moves with dy/dt = W21 x < 0,
    downwards, so the spiral turns clockwise. In general the signed angular velocity is
    z x dz/dt = x dy/dt - y dx/dt = W21 x^2 + (W22 - W11) x y - W12 y^2, negative everywhere for
    these matrices. The counter-clockwise spirals swap W12 and W21, which flips its sign.

    That form keeps one sign only while W has complex eigenvalues, (W11 - W22)^2 < 4 W12 |W21|;
    otherwise the "spiral" is a node that need not turn at all. The rotation pairs
    (W12, W21) that break this (about 1 in 130) are drawn again, so every trajectory spirals. Since
    W11, W22 <= -0.05 every spiral decays towards 0.

    The trajectories come from minode's own ``odeint`` (dopri5), all spirals in one batched solve;
    ``observations`` add independent N(0, noise_std^2) noise to every coordinate.

    Args:
        rng: a ``numpy.random.Generator`` (or a seed for ``numpy.random.default_rng``).

    Returns:
        A `Spirals` of NumPy arrays: float64, and bool for ``clockwise``.
    """
    if n_spirals < 1 or n_points < 2:
        raise ValueError(f"need n_spirals >= 1 and n_points >= 2, got {n_spirals} and {n_points}")
    if not (t_max > 0 and noise_std >= 0 and init_std > 0):
        raise ValueError(f"need t_max > 0, noise_std >= 0 and init_std > 0, got {t_max}, "
                         f"{noise_std} and {init_std}")
    rng = numpy.random.default_rng(rng)

    z0 = init_std * rng.standard_normal((n_spirals, 2))
    decay = -0.1 * numpy.abs(rng.standard_normal((n_spirals, 2))) - 0.05   # W11, W22
    rotation = numpy.abs(rng.standard_normal((n_spirals, 2)))               # W12, -W21
    while True:
        is_node = (decay[:, 0] - decay[:, 1]) ** 2 >= 4 * rotation[:, 0] * rotation[:, 1]
        if not is_node.any():
            break
        rotation[is_node] = numpy.abs(rng.standard_normal((int(is_node.sum()), 2)))

    clockwise = numpy.zeros(n_spirals, dtype=bool)
    clockwise[rng.permutation(n_spirals)[:n_spirals // 2]] = True
    upper = numpy.where(clockwise, rotation[:, 0], -rotation[:, 1])   # W12
    lower = numpy.where(clockwise, -rotation[:, 1], rotation[:, 0])   # W21: the swap
    matrices = numpy.stack([numpy.stack([decay[:, 0], upper], axis=-1),
                            numpy.stack([lower, decay[:, 1]], axis=-1)], axis=1)

    def linear_dynamics(z, t, w):
        column = ops.reshape(z, (n_spirals, 2, 1))
        return ops.reshape(ops.matmul(w, column), (n_spirals, 2))

    times = numpy.linspace(0.0, t_max, n_points)
    solution = odeint(linear_dynamics, backend.asarray(z0), backend.asarray(times),
                      backend.asarray(matrices), rtol=1e-8, atol=1e-10)
    trajectories = numpy.swapaxes(backend.to_numpy(solution), 0, 1)   # (n_spirals, n_points, 2)
    observations = trajectories + noise_std * rng.standard_normal(trajectories.shape)
    return Spirals(times=times, trajectories=trajectories, observations=observations,
                   clockwise=clockwise, matrices=matrices)


# ----------------------------------------------------------------------------------------------
# Two Circles and Two Moons (continuous normalizing flow tutorial)
# ----------------------------------------------------------------------------------------------
#
# Both are mixtures of two curves, each point a uniform draw along one of them plus isotropic
# Gaussian noise; the densities integrate that noise over the curve by the midpoint rule.

_CURVE_POINTS = 500       # quadrature points per curve: spacing <= 2 pi / 500 = 0.013, noise / 4
_DENSITY_CHUNK = 4096     # rows of x per block of the (rows, curve points) kernel matrix
_MOONS_CENTRE = numpy.array([0.5, 0.25])


def _circle_points(angles, radius):
    return radius * numpy.stack([numpy.cos(angles), numpy.sin(angles)], axis=-1)


def _moon_points(angles):
    """The upper moon (cos a, sin a) and the lower one (1 - cos a, 1/2 - sin a), centred."""
    upper = numpy.stack([numpy.cos(angles), numpy.sin(angles)], axis=-1)
    lower = numpy.stack([1 - numpy.cos(angles), 0.5 - numpy.sin(angles)], axis=-1)
    return upper - _MOONS_CENTRE, lower - _MOONS_CENTRE


def _draw_from_curves(rng, n, noise, curve_points):
    """n noisy points, in random order: ``curve_points(rng)`` draws n uniform angles and returns
    both curves' points at them; n // 2 points come from the first curve, the rest from the
    second."""
    check_positive_int("n", n)
    check_positive("noise", noise)
    first, second = curve_points(rng)
    on_curves = numpy.concatenate([first[:n // 2], second[n // 2:]])
    points = on_curves + noise * rng.standard_normal(on_curves.shape)
    return points[rng.permutation(n)]


def make_two_circles(rng, n, noise=0.06, factor=0.5):
    """n points (n, 2) of Two Circles: half on the unit circle, half on the circle of radius
    ``factor``, each at a uniform angle, plus N(0, noise^2 I). ``rng``: a Generator or a seed."""
    rng = numpy.random.default_rng(rng)

    def curves(rng):
        angles = rng.uniform(0, 2 * numpy.pi, n)
        return _circle_points(angles, 1.0), _circle_points(angles, factor)
    return _draw_from_curves(rng, n, noise, curves)


def make_two_moons(rng, n, noise=0.1):
    """n points (n, 2) of Two Moons: half on the upper moon, half on the lower, each at a
    uniform angle in [0, pi], centred by -(1/2, 1/4), plus N(0, noise^2 I)."""
    rng = numpy.random.default_rng(rng)
    return _draw_from_curves(rng, n, noise, lambda rng: _moon_points(rng.uniform(0, numpy.pi, n)))


def _curves_log_density(x, curves, noise):
    """log of the equal-weight mixture over ``curves`` of N(x; c, noise^2 I) averaged over the
    points c of each curve (a uniform distribution along it), for every row of x (m, 2)."""
    x = numpy.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must be an array of 2-D points, shape (m, 2), got {x.shape}")
    centres = numpy.concatenate(curves)                       # equal weights for all points
    log_norm = -numpy.log(2 * numpy.pi * noise ** 2) - numpy.log(len(centres))
    blocks = []
    for start in range(0, len(x), _DENSITY_CHUNK):
        block = x[start:start + _DENSITY_CHUNK]
        squared = ((block[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * noise ** 2)
        blocks.append(scipy.special.logsumexp(-squared, axis=1))  # host arrays, any backend
    return numpy.concatenate(blocks) + log_norm


def _midpoints(low, high):
    return low + (high - low) * (numpy.arange(_CURVE_POINTS) + 0.5) / _CURVE_POINTS


def two_circles_log_density(x, noise=0.06, factor=0.5):
    """log p(x) (m,) of the distribution `make_two_circles` draws from, for x of shape (m, 2)."""
    angles = _midpoints(0, 2 * numpy.pi)
    return _curves_log_density(x, [_circle_points(angles, 1.0), _circle_points(angles, factor)],
                               noise)


def two_moons_log_density(x, noise=0.1):
    """log p(x) (m,) of the distribution `make_two_moons` draws from, for x of shape (m, 2)."""
    return _curves_log_density(x, list(_moon_points(_midpoints(0, numpy.pi))), noise)


# ----------------------------------------------------------------------------------------------
# Archimedean spirals (the paper's latent ODE data, Sec. 5.1)
# ----------------------------------------------------------------------------------------------

FULL_TURNS_ANGLE = 6 * math.pi          # the spiral's largest angle: three full turns
AUTHORS_ANGLE_STEP = 6 * math.pi / 499  # 500 equally spaced angles on [0, 6 pi]


@dataclasses.dataclass(frozen=True)
class ArchimedeanSpirals:
    """Windows of the spiral r = b theta made by `make_archimedean_spirals`.

    Attributes:
        times: (n_points,) the equally spaced times of every trajectory, from 0.
        trajectories: (n_spirals, n_points, 2) the clean points.
        observations: (n_spirals, n_points, 2) ``trajectories`` plus Gaussian noise.
        clockwise: (n_spirals,) bool, True where the spiral turns clockwise (x right, y up).
        start_angles: (n_spirals,) the angle theta of each trajectory at t = 0.
    """
    times: numpy.ndarray
    trajectories: numpy.ndarray
    observations: numpy.ndarray
    clockwise: numpy.ndarray
    start_angles: numpy.ndarray


def make_archimedean_spirals(rng, n_spirals=1000, n_points=200, *, b=0.3,
                             max_angle=FULL_TURNS_ANGLE, time_step=AUTHORS_ANGLE_STEP,
                             min_start_angle=100 * AUTHORS_ANGLE_STEP, noise_std=0.3):
    """Noisy windows of an Archimedean spiral, half of them clockwise (Chen et al. 2018, Sec. 5.1:
    "1000 2-dimensional spirals, each starting at a different point").

    The counter-clockwise spiral is r = b theta, turning outwards at one radian per unit of
    time; the clockwise one is its mirror image in the x axis::

        theta(t) = theta_0 + t,   (x, y) = b theta(t) (cos theta(t), +-sin theta(t)),

    seen at ``n_points`` times t = 0, time_step, 2 time_step, ... Each trajectory has its own
    start angle theta_0, uniform on [min_start_angle, max_angle - (n_points - 1) time_step], so
    every window ends on the spiral's three turns. The defaults follow the authors' example
    (torchdiffeq ``examples/latent_ode.py``: b = 0.3, 500 angles on [0, 6 pi], windows that
    start from the 100th angle on, noise 0.3). Exactly ``n_spirals // 2`` turn clockwise.
    ``observations`` add independent N(0, noise_std^2) noise to every coordinate.

    Args:
        rng: a ``numpy.random.Generator`` (or a seed for ``numpy.random.default_rng``).

    Returns:
        An `ArchimedeanSpirals` of NumPy arrays: float64, and bool for ``clockwise``.
    """
    check_positive_int("n_spirals", n_spirals)
    check_positive_int("n_points", n_points)
    for name, value in [("b", b), ("max_angle", max_angle), ("time_step", time_step)]:
        check_positive(name, value)
    check_nonnegative("min_start_angle", min_start_angle)
    check_nonnegative("noise_std", noise_std)
    latest_start = max_angle - (n_points - 1) * time_step
    if latest_start < min_start_angle:
        raise ValueError(f"a window of n_points={n_points} at time_step={time_step:g} does not "
                         f"fit between min_start_angle={min_start_angle:g} and "
                         f"max_angle={max_angle:g}")
    rng = numpy.random.default_rng(rng)
    start_angles = rng.uniform(min_start_angle, latest_start, size=n_spirals)
    clockwise = numpy.zeros(n_spirals, dtype=bool)
    clockwise[rng.permutation(n_spirals)[:n_spirals // 2]] = True
    times = time_step * numpy.arange(n_points)
    theta = start_angles[:, None] + times[None, :]
    mirror = numpy.where(clockwise, -1.0, 1.0)[:, None]
    trajectories = numpy.stack([b * theta * numpy.cos(theta),
                                mirror * b * theta * numpy.sin(theta)], axis=-1)
    observations = trajectories + noise_std * rng.standard_normal(trajectories.shape)
    return ArchimedeanSpirals(times=times, trajectories=trajectories, observations=observations,
                              clockwise=clockwise, start_angles=start_angles)
