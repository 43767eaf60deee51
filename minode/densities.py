"""The 2-D densities of sec. 4.1 (Chen et al. 2018, Fig. 4-5), for both of its experiments.

Targets for density matching (Fig. 4): unnormalised densities p(z) = exp(-U(z)) / Z given by an
energy U, and log Z by quadrature. Toy sample sets for maximum likelihood (Fig. 5): Two Circles
and Two Moons, drawn by `make_two_circles` and `make_two_moons`, with the exact log density they
are drawn from (`two_circles_log_density`, `two_moons_log_density`): the floor of any model's
negative log-likelihood.

The energies are those of Rezende & Mohamed 2015, Table 1, which the Neural ODE paper's
Figure 4 appears to use (it does not name its targets), with

    w1(z) = sin(2 pi z1 / 4),   w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2):

    U1(z) = ((|z| - 2) / 0.4)^2 / 2
            - log( exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2) )
    U2(z) = ((z2 - w1(z)) / 0.4)^2 / 2
    U3(z) = -log( exp(-((z2 - w1(z)) / 0.35)^2 / 2) + exp(-((z2 - w1(z) + w2(z)) / 0.35)^2 / 2) )

U2 and U3 are bands that never decay along z1: exp(-U) has infinite mass on R^2, and
KL(q || p) is unbounded below. The confined energies U2c and U3c add (z1 / 4)^8, i.e. multiply
the density by exp(-(z1 / 4)^8), which leaves |z1| <= 3 nearly untouched (a factor >= 0.9) and
makes both normalisable. That confinement is minode's change, not the papers'.

`log_normalizer` computes log Z by quadrature, so KL(q || p) = E_q[log q + U] + log Z is a
number that reaches 0 only for q = p.

Two Circles and Two Moons are mixtures of two curves, each point a uniform draw along one of them
plus isotropic Gaussian noise; their densities integrate that noise over the curves by the
midpoint rule. They run on the host and return NumPy arrays.
"""
import math

import numpy
import scipy.special

from minode import backend, ops
from minode.checks import check_positive, check_positive_int

__all__ = ["u1", "u2", "u3", "u2_confined", "u3_confined", "ENERGIES", "log_normalizer",
           "make_two_circles", "two_circles_log_density", "make_two_moons",
           "two_moons_log_density"]


def _columns(z):
    if getattr(z, "ndim", None) != 2 or z.shape[1] != 2:
        raise ValueError(f"z must be an array of 2-D points, shape (batch, 2), got "
                         f"{getattr(z, 'shape', type(z).__name__)}")
    return z[:, 0], z[:, 1]


def _half_square(x, scale):
    """((x) / scale)^2 / 2."""
    return 0.5 * ops.square(x / scale)


def _minus_log_sum_of_gaussians(a, b, scale):
    """-log(exp(-(a/scale)^2/2) + exp(-(b/scale)^2/2)), without underflow."""
    exponents = ops.stack([-_half_square(a, scale), -_half_square(b, scale)], axis=1)
    return -ops.logsumexp(exponents, axis=1)


def _w1(z1):
    return ops.sin(2.0 * math.pi / 4.0 * z1)


def _w2(z1):
    return 3.0 * ops.exp(-_half_square(z1 - 1.0, 0.6))


def u1(z):
    """U1: a ring of radius 2 cut into two modes at z1 = +-2 (B,) for points ``z`` (B, 2)."""
    z1, _ = _columns(z)
    radius = ops.sqrt(ops.sum(ops.square(z), axis=1))
    return _half_square(radius - 2.0, 0.4) + _minus_log_sum_of_gaussians(z1 - 2.0, z1 + 2.0, 0.6)


def u2(z):
    """U2: the sine band z2 = sin(pi z1 / 2), width 0.4 (not normalisable on R^2)."""
    z1, z2 = _columns(z)
    return _half_square(z2 - _w1(z1), 0.4)


def u3(z):
    """U3: the sine band and a copy shifted by w2 around z1 = 1 (not normalisable on R^2)."""
    z1, z2 = _columns(z)
    gap = z2 - _w1(z1)
    return _minus_log_sum_of_gaussians(gap, gap + _w2(z1), 0.35)


def _confinement(z):
    """(z1 / 4)^8: the factor exp(-(z1 / 4)^8) that makes U2 and U3 normalisable."""
    z1, _ = _columns(z)
    return (z1 / 4.0) ** 8


def u2_confined(z):
    """U2c = U2 + (z1 / 4)^8."""
    return u2(z) + _confinement(z)


def u3_confined(z):
    """U3c = U3 + (z1 / 4)^8."""
    return u3(z) + _confinement(z)


ENERGIES = {"U1": u1, "U2c": u2_confined, "U3c": u3_confined}


def log_normalizer(energy, limit=7.0, points=1401):
    """log Z = log of the integral of exp(-energy(z)) over the square [-limit, limit]^2.

    The midpoint rule on ``points`` x ``points`` cells; for a smooth integrand that has decayed
    at the square's edges it converges quickly (the tests compare two grids). The default
    square holds U1, U2c and U3c with margin.
    """
    check_positive("limit", limit)
    check_positive_int("points", points)
    xp = backend.xp
    cell = 2.0 * limit / points
    axis = xp.linspace(-limit + cell / 2, limit - cell / 2, points)
    grid_1, grid_2 = xp.meshgrid(axis, axis)
    grid = xp.stack([grid_1.ravel(), grid_2.ravel()], axis=1)
    return float(ops.logsumexp(-energy(grid), axis=0)) + 2.0 * math.log(cell)


# ----------------------------------------------------------------------------------------------
# Two Circles and Two Moons: samples and their exact log density (Fig. 5)
# ----------------------------------------------------------------------------------------------

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
