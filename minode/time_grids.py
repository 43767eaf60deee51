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
So the solve stops at each output time and restarts: T-1 ordinary one-interval solves
(`minode.solve.solve`) from s = 0 to s = 1, chained, each with the interval's ends
(t_bi, t_b(i+1)) among its parameters. autograd composes the intervals, and each interval's
gradient comes from that solve: with ``grad="adjoint"`` the ends' gradients are part of the
parameter adjoint a_theta (eq. (5)), and the adjoint runs T-1 backward intervals, as it does for
1-D ``t`` (Algorithm 2, one interval between each pair of output times); with ``grad="backprop"``
autograd traces the steps. So dL/dt_bi has the meaning of the 1-D case, for every entry of the 2-D
``t``.

Columns that hold the same times in every row (a shared future grid; rows alike) need no
change of variable: a run of them is one ordinary 1-D solve over those times, with dense
output. Every row is then solved at the same times tau_j, so when ``t`` is differentiated each
output of the run is written y_b(tau_j) + (t_bj - tau_j) f(y_b(tau_j), tau_j): the added term is
exactly zero, and its derivative w.r.t. t_bj is f, that of the solution at its own time; the
run's first state gets the same term with the opposite sign, because where a row enters the
run moves all of its later solution (dL/dt_0 = -a(t_0) . f, as in `minode.adjoint`).

What it costs (`benchmarks/per_sample_times.py` measures it): every interval is a fresh solve,
so an adaptive method evaluates f at the interval's start (the first-same-as-last stage of the
previous step has the previous slope), and an output time is always the end of a step, never a
dense-output point: at least 1 + 6 evaluations per interval for dopri5, where a solve on one
shared grid covers several output times per step. A fresh solve would also forget the step
size and spend an evaluation on Hairer's initial estimate, which starts small and takes a few
steps to grow; instead each interval's first trial step is the whole interval (``first_step``
= 1 in s), which output intervals shorter than the solver's natural step accept at once, and
longer ones cut down by the usual rejections (a factor of at least 5 each). The alternative,
solving on the union of every row's times and gathering, needs a shared start, and its adjoint
stops at every time of the union (up to B * (T-1) of them). Fixed-step methods lose nothing:
each interval is split into the steps that its longest row needs.

Options given in units of t are converted for each interval (an interval is one unit of s;
`minode.solve.SolveSettings.in_time_units`):
``step_size`` and ``adjoint_step_size`` become 1 / ceil(longest |t_b(i+1) - t_bi| / step_size),
so no row takes a longer step than asked; ``min_step`` and ``first_step`` are divided by the
longest row's span (``first_step`` at most 1); ``max_steps`` bounds each interval's solve. A
shared run takes the options as given.
"""
from autograd.tracer import getval, isbox

from minode import backend
from minode.ops import as_dtype, getitem, multiply, reshape, stack, where
from minode.solve import solve

__all__ = ["odeint_per_sample"]


def odeint_per_sample(func, y0, t, host_t, params, settings):
    """`minode.odeint` for a (B, T) ``t``: one solve in s per interval, one 1-D solve per run
    of columns that every row shares.

    ``t`` and its float64 host copy ``host_t`` are checked by `odeint` (finite, rows monotone,
    one direction), as are ``func``, ``y0``, ``params`` and the `minode.solve.SolveSettings`.
    Returns shape (T, B) + y0.shape[1:], ``ys[i, b]`` sample b's state at ``t[b, i]``.
    """
    _check_batch(y0, host_t)
    # (B, T, 1, ..., 1): column i is one time per sample, broadcastable against y
    times = reshape(t, t.shape + (1,) * (getval(y0).ndim - 1))
    outputs = [y0]
    for first, last in _segments(host_t):
        if last > first + 1:
            outputs += _solve_shared_run(func, outputs[-1], times, host_t[0, first:last + 1],
                                         first, params, settings)
        else:
            longest = float(abs(host_t[:, last] - host_t[:, first]).max())
            outputs.append(_solve_interval(func, outputs[-1], times, first, params,
                                           settings.in_time_units(longest)))
    return stack(outputs)


def _check_batch(y0, host_t):
    """``y0`` must have a batch axis with one row per row of ``t``, and a state axis."""
    state_shape = tuple(getval(y0).shape)
    if len(state_shape) < 2:
        raise ValueError(f"with a 2-D t (one time grid per sample), y0 must have shape (B, ...) "
                         f"with a batch axis and at least one state axis, got y0 of shape "
                         f"{state_shape}; use shape (B, 1) for scalar states")
    if state_shape[0] != host_t.shape[0]:
        raise ValueError(f"t has {host_t.shape[0]} rows (one time grid per sample) but y0 has a "
                         f"batch axis of size {state_shape[0]}; they must match")


def _segments(host):
    """``[(first, last), ...]`` covering the columns of ``host`` in order: a run of two or more
    columns that hold the same times in every row, or else one interval (i, i + 1)."""
    shared = (host == host[:1]).all(axis=0)
    segments, first = [], 0
    while first < host.shape[1] - 1:
        last = first + 1
        while shared[first] and shared[last] and last + 1 < host.shape[1] and shared[last + 1]:
            last += 1
        segments.append((first, last))
        first = last
    return segments


def _solve_interval(func, y, times, first, params, settings):
    """The state at column ``first + 1`` from ``y`` at column ``first``: one solve in s."""
    start = getitem(times, (slice(None), first))
    end = getitem(times, (slice(None), first + 1))
    span = end - start  # in t's precision, then cast
    interval = tuple(as_dtype(x, getval(y).dtype) for x in (start, span, end))
    dynamics = _interval_dynamics(func, params is not None, _rounds_past_end(*interval))
    return getitem(solve(dynamics, y, backend.asarray([0.0, 1.0]),
                         interval + (params,) if params is not None else interval, settings), 1)


def _rounds_past_end(start, span, end):
    """Whether start + span rounds past end in some row (by an ulp, e.g. across t = 0).

    Only then can start + s * span, 0 <= s <= 1, leave [start, end]: rounding is monotone.
    """
    xp = backend.xp
    start, span, end = getval(start), getval(span), getval(end)
    return bool(xp.any((start + span - end) * span > 0))


def _interval_dynamics(func, with_params, clamp_to_end):
    """dz/ds = span * f(z, start + s * span), row by row, for s in [0, 1].

    ``start``, ``span`` = t_end - t_start and ``end`` are (B, 1, ..., 1) arrays of z's dtype,
    so ``func`` receives one time per sample, broadcastable against z (as a 1-D ``t`` arrives
    as a 0-d array of z's dtype). With ``clamp_to_end``, a time that rounds past its row's end
    is that end (the same value and derivative that start + s * span has there, s = 1), so
    ``func`` is never evaluated outside the row's interval.
    """
    def dynamics(z, s, interval):
        start, span, end = interval[0], interval[1], interval[2]
        time = start + multiply(s, span)
        if clamp_to_end:
            time = where((getval(time) - getval(end)) * getval(span) > 0, end, time)
        return multiply(span, func(z, time, interval[3] if with_params else None))
    return dynamics


def _solve_shared_run(func, y, times, run_times, first, params, settings):
    """States at columns ``first + 1 ...`` that hold ``run_times`` in every row: one 1-D solve.

    Every row is then solved at the same times, so a differentiated ``t`` reaches the run only
    through the zero-valued terms (t_bj - tau_j) f(y_bj, tau_j) (see the module docstring).
    """
    dtype = getval(y).dtype
    ones = backend.xp.ones(times.shape[:1] + times.shape[2:], dtype=dtype)

    def row_func(z, tau, p):
        return func(z, multiply(tau, ones), p)

    def slope(state, k):
        """(t_b(first+k) - tau_k) f(state, tau_k): zero, with derivative f w.r.t. t_b(first+k)."""
        gap = as_dtype(getitem(times, (slice(None), first + k)) - float(run_times[k]), dtype)
        settings.stats.forward.nfe += 1
        return multiply(gap, func(state, backend.asarray(run_times[k], dtype=dtype) * ones,
                                  params))

    traced = isbox(times)
    start = y - slope(y, 0) if traced else y
    ys = solve(row_func, start, backend.asarray(run_times), params, settings)
    outputs = [getitem(ys, k) for k in range(1, len(run_times))]
    if traced:
        outputs = [state + slope(state, k) for k, state in enumerate(outputs, start=1)]
    return outputs
