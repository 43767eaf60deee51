"""Spiral trajectories for the latent ODE (Chen et al. 2018, sec. 5.1, Fig. 8).

`make_spirals` builds spiral data in the spirit of the latent ODE experiment: noisy 2-D
trajectories, half of them turning clockwise, half counter-clockwise. Here each spiral solves a
random linear ODE, so the data really come from an ODE. `make_archimedean_spirals` builds the
paper's own setup: windows of one Archimedean spiral and of its mirror image, each starting at a
different point.

Everything here runs on the host and returns NumPy arrays; a model moves them to the active
backend with ``minode.backend.asarray``.
"""
import dataclasses
import math

import numpy

from minode import backend, ops
from minode.checks import check_nonnegative, check_positive, check_positive_int
from minode.odeint import odeint

__all__ = ["Spirals", "make_spirals", "ArchimedeanSpirals", "make_archimedean_spirals",
           "concatenate_spirals", "FULL_TURNS_ANGLE", "AUTHORS_ANGLE_STEP"]


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
                             min_start_angle=100 * AUTHORS_ANGLE_STEP, noise_std=0.3,
                             on_curve_points=None):
    """Noisy windows of an Archimedean spiral, half of them clockwise (Chen et al. 2018, Sec. 5.1:
    "1000 2-dimensional spirals, each starting at a different point").

    The counter-clockwise spiral is r = b theta, turning outwards at one radian per unit of
    time; the clockwise one is its mirror image in the x axis::

        theta(t) = theta_0 + t,   (x, y) = b theta(t) (cos theta(t), +-sin theta(t)),

    seen at ``n_points`` times t = 0, time_step, 2 time_step, ... Each trajectory has its own
    start angle theta_0, uniform on [min_start_angle, max_angle - (on_curve_points - 1)
    time_step], so that the first ``on_curve_points`` points of every window (default: all
    ``n_points``) lie on the spiral's three turns; the rest of a window follows the same spiral
    r = b theta past ``max_angle``. With ``on_curve_points`` < ``n_points`` the windows start
    anywhere on the curve, as the authors' example's do. The defaults follow the authors' example
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
    on_curve_points = n_points if on_curve_points is None else on_curve_points
    check_positive_int("on_curve_points", on_curve_points)
    if on_curve_points > n_points:
        raise ValueError(f"on_curve_points={on_curve_points} is more than the window's "
                         f"n_points={n_points}: pass at most n_points")
    latest_start = max_angle - (on_curve_points - 1) * time_step
    if latest_start < min_start_angle:
        raise ValueError(f"a window of n_points={on_curve_points} at time_step={time_step:g} "
                         f"does not fit between min_start_angle={min_start_angle:g} and "
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


def concatenate_spirals(parts):
    """One `ArchimedeanSpirals` holding the spirals of ``parts`` in order (e.g. windows laid out
    differently for training and for held-out spirals); every part must share ``times``."""
    parts = list(parts)
    if not parts:
        raise ValueError("concatenate_spirals: parts is empty; pass at least one "
                         "ArchimedeanSpirals")
    for k, part in enumerate(parts[1:], start=1):
        if not numpy.array_equal(part.times, parts[0].times):
            raise ValueError(f"concatenate_spirals: parts[{k}].times differ from parts[0].times; "
                             f"make every part with the same n_points and time_step")
    fields = [field.name for field in dataclasses.fields(ArchimedeanSpirals)
              if field.name != "times"]
    return ArchimedeanSpirals(times=parts[0].times, **{
        name: numpy.concatenate([getattr(part, name) for part in parts]) for name in fields})
