"""One time grid per sample: `odeint` with ``t`` of shape (B, T), row b the times of sample b.

The samples of a batch are independent ODEs dy_b/dt = f(y_b, t), but each is wanted at its own
times t_b0, ..., t_b(T-1) (irregularly sampled series: Chen et al. 2018, sec. 5.1, "we randomly
sample points from each trajectory"). A change of time variable puts them on one shared grid.
Sample b's time becomes a function of a new variable s, piecewise linear through its own times,

    t_b(s) = t_bi + (s - i) * (t_b(i+1) - t_bi)      for i <= s <= i + 1,

so that s = 0, 1, ..., T-1 is every sample's grid, and z_b(s) = y_b(t_b(s)) solves

    dz_b/ds = dt_b/ds * f(z_b, t_b(s)) = (t_b(i+1) - t_bi) * f(z_b, t_b(s)),

exactly (the chain rule; nothing is interpolated). Rows may start at different times.

The slope dt_b/ds jumps at every integer s, so the s-ODE's right-hand side does too: a solver
stepping across s = i would see a kink that its error estimate and dense output do not expect.
So the solve stops at each output time and restarts: T-1 ordinary one-interval `odeint` solves
from s = 0 to s = 1, chained, each with the interval's ends (t_bi, t_b(i+1)) among its
parameters. autograd composes the intervals, and each interval's gradient comes from `odeint`
itself: with ``grad="adjoint"`` the ends' gradients are part of the parameter adjoint a_theta
(eq. (5)), and the adjoint runs T-1 backward intervals, as it does for 1-D ``t`` (Algorithm 2,
one interval between each pair of output times); with ``grad="backprop"`` autograd traces the
steps. So dL/dt_bi has the meaning of the 1-D case, for every entry of the 2-D ``t``.

What it costs (`benchmarks/per_sample_times.py` measures it): every interval is a fresh solve,
so an adaptive method evaluates f at the interval's start (the first-same-as-last stage of the
previous step has the previous slope), and an output time is always the end of a step, never a
dense-output point: at least 1 + 6 evaluations per interval for dopri5, where a solve on one
shared grid covers several output times per step. The fresh solve would also forget the step
size and spend an evaluation on Hairer's initial estimate, which starts small and takes a few
steps to grow; instead each interval's first trial step is the whole interval (``first_step``
= 1 in s), which output intervals shorter than the solver's natural step accept at once, and
longer ones cut down by the usual rejections (a factor of at least 5 each). The alternative,
solving on the union of every row's times and gathering, needs a shared start, and its adjoint
stops at every time of the union (up to B * (T-1) of them). Fixed-step methods lose nothing:
each interval is split into the steps that its longest row needs.

Options given in units of t are converted for each interval (an interval is one unit of s):
``step_size`` and ``adjoint_step_size`` become 1 / ceil(longest |t_b(i+1) - t_bi| / step_size),
so no row takes a longer step than asked; ``min_step`` and ``first_step`` are divided by the
longest row's span (``first_step`` at most 1); ``max_steps`` bounds each interval's solve.
"""
import math

from autograd.tracer import getval

from minode import backend
from minode.checks import check_nonnegative, check_positive
from minode.ops import astype, getitem, multiply, reshape, stack

__all__ = ["is_per_sample", "check_time_grids", "odeint_per_sample"]

_STEP_OPTIONS = ("step_size", "adjoint_step_size")


def is_per_sample(t):
    """True when ``t`` is 2-D: one time grid per sample."""
    value = getval(t)
    ndim = getattr(value, "ndim", None)
    if ndim is None:
        ndim = backend.to_numpy(backend.asarray(value, dtype="float64")).ndim
    return ndim == 2


def check_time_grids(t, y0):
    """Check a (B, T) ``t`` against ``y0`` (shape (B, ...)); returns ``(t, host copy of t)``."""
    value = getval(t)
    if not hasattr(value, "ndim"):
        t = value = backend.asarray(t, dtype="float64")
    if value.dtype.kind != "f":
        raise ValueError(f"t must be a floating-point array, got dtype {value.dtype}")
    n_rows, n_times = value.shape
    if n_times < 2:
        raise ValueError(f"a 2-D t (one time grid per sample) needs at least 2 times per row, "
                         f"got shape {value.shape}")
    state_shape = tuple(getval(y0).shape)
    if len(state_shape) < 2:
        raise ValueError(f"with a 2-D t (one time grid per sample), y0 must have shape (B, ...) "
                         f"with a batch axis and at least one state axis, got y0 of shape "
                         f"{state_shape}; use shape (B, 1) for scalar states")
    if state_shape[0] != n_rows:
        raise ValueError(f"t has {n_rows} rows (one time grid per sample) but y0 has a batch "
                         f"axis of size {state_shape[0]}; they must match")
    host = backend.to_numpy(value).astype(float)
    _check_rows(host)
    return t, host


def _check_rows(host):
    """Every row finite and strictly monotone, all in one direction."""
    for row, times in enumerate(host):
        if not all(math.isfinite(x) for x in times.tolist()):
            raise ValueError(f"t must be finite, got row {row}: {times}")
    steps = host[:, 1:] - host[:, :-1]
    increasing, decreasing = (steps > 0).all(axis=1), (steps < 0).all(axis=1)
    for row in range(len(host)):
        if not (increasing[row] or decreasing[row]):
            raise ValueError(f"each row of t must be strictly increasing or strictly "
                             f"decreasing (no repeated times), got row {row}: {host[row]}")
    if increasing.any() and decreasing.any():
        raise ValueError(f"the rows of t must all run in the same direction, got increasing "
                         f"rows {increasing.nonzero()[0].tolist()} and decreasing rows "
                         f"{decreasing.nonzero()[0].tolist()}")


def odeint_per_sample(odeint, func, y0, t, params, options):
    """``odeint(func, y0, t, params, **options)`` for a (B, T) ``t``, by T-1 solves in s.

    ``odeint`` is `minode.odeint` itself (passed in: this module sits below it). Returns shape
    (T, B) + y0.shape[1:], ``ys[i, b]`` sample b's state at ``t[b, i]``.
    """
    t, host = check_time_grids(t, y0)
    spans = host[:, 1:] - host[:, :-1]
    dynamics = _interval_dynamics(func, tuple(getval(y0).shape), with_params=params is not None)
    s_grid = backend.asarray([0.0, 1.0])
    outputs, y = [y0], y0
    for i in range(spans.shape[1]):
        ends = (getitem(t, (slice(None), i)), getitem(t, (slice(None), i + 1)))
        interval = ends + (params,) if params is not None else ends
        y = getitem(odeint(dynamics, y, s_grid, interval,
                           **_options_in_s(options, spans[:, i])), 1)
        outputs.append(y)
    return stack(outputs)


def _interval_dynamics(func, state_shape, with_params):
    """dz/ds = (t_end - t_start) * f(z, t_start + s (t_end - t_start)), row by row, s in [0, 1].

    ``func`` receives the time as an array of shape (B, 1, ..., 1), one time per sample,
    broadcastable against z and of z's dtype (as a 1-D ``t`` arrives as a 0-d array).
    """
    column = (state_shape[0],) + (1,) * (len(state_shape) - 1)

    def dynamics(z, s, interval):
        start, end = interval[0], interval[1]
        span = reshape(end - start, column)
        times = reshape(start, column) + multiply(s, span)
        if times.dtype != z.dtype:
            times, span = astype(times, z.dtype), astype(span, z.dtype)
        return multiply(span, func(z, times, interval[2] if with_params else None))
    return dynamics


def _options_in_s(options, spans):
    """``options`` with the ones in units of t converted to one interval = one unit of s."""
    longest = float(abs(spans).max())
    converted = dict(options)
    for name in _STEP_OPTIONS:
        if options.get(name) is not None:
            check_positive(name, options[name])
            converted[name] = 1.0 / max(1, math.ceil(longest / options[name] - 1e-9))
    check_nonnegative("min_step", options["min_step"])
    converted["min_step"] = options["min_step"] / longest
    if options["first_step"] is None:
        converted["first_step"] = 1.0
    else:
        check_positive("first_step", options["first_step"])
        converted["first_step"] = min(1.0, options["first_step"] / longest)
    return converted
