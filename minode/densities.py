"""Unnormalised 2-D target densities p(z) = exp(-U(z)) / Z for density matching (sec. 4.1).

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
"""
import math

from minode import backend, ops
from minode.checks import check_positive, check_positive_int

__all__ = ["u1", "u2", "u3", "u2_confined", "u3_confined", "ENERGIES", "log_normalizer"]


def _columns(z):
    if getattr(z, "ndim", None) != 2 or z.shape[1] != 2:
        raise ValueError(f"z must be an array of 2-D points, shape (batch, 2), got "
                         f"{getattr(z, 'shape', type(z).__name__)}")
    return ops.getitem(z, (slice(None), 0)), ops.getitem(z, (slice(None), 1))


def _half_square(x, scale):
    """((x) / scale)^2 / 2."""
    return ops.multiply(0.5, ops.square(ops.divide(x, scale)))


def _minus_log_sum_of_gaussians(a, b, scale):
    """-log(exp(-(a/scale)^2/2) + exp(-(b/scale)^2/2)), without underflow."""
    exponents = ops.stack([ops.negative(_half_square(a, scale)),
                           ops.negative(_half_square(b, scale))], axis=1)
    return ops.negative(ops.logsumexp(exponents, axis=1))


def _w1(z1):
    return ops.sin(ops.multiply(2.0 * math.pi / 4.0, z1))


def _w2(z1):
    return ops.multiply(3.0, ops.exp(ops.negative(_half_square(ops.subtract(z1, 1.0), 0.6))))


def u1(z):
    """U1: a ring of radius 2 cut into two modes at z1 = +-2 (B,) for points ``z`` (B, 2)."""
    z1, _ = _columns(z)
    radius = ops.sqrt(ops.sum(ops.square(z), axis=1))
    return ops.add(_half_square(ops.subtract(radius, 2.0), 0.4),
                   _minus_log_sum_of_gaussians(ops.subtract(z1, 2.0), ops.add(z1, 2.0), 0.6))


def u2(z):
    """U2: the sine band z2 = sin(pi z1 / 2), width 0.4 (not normalisable on R^2)."""
    z1, z2 = _columns(z)
    return _half_square(ops.subtract(z2, _w1(z1)), 0.4)


def u3(z):
    """U3: the sine band and a copy shifted by w2 around z1 = 1 (not normalisable on R^2)."""
    z1, z2 = _columns(z)
    gap = ops.subtract(z2, _w1(z1))
    return _minus_log_sum_of_gaussians(gap, ops.add(gap, _w2(z1)), 0.35)


def _confinement(z):
    """(z1 / 4)^8: the factor exp(-(z1 / 4)^8) that makes U2 and U3 normalisable."""
    z1, _ = _columns(z)
    return ops.power(ops.divide(z1, 4.0), 8)


def u2_confined(z):
    """U2c = U2 + (z1 / 4)^8."""
    return ops.add(u2(z), _confinement(z))


def u3_confined(z):
    """U3c = U3 + (z1 / 4)^8."""
    return ops.add(u3(z), _confinement(z))


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
    return float(ops.logsumexp(ops.negative(energy(grid)), axis=0)) + 2.0 * math.log(cell)
