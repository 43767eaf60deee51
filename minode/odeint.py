"""``odeint``: solve an ODE at a grid of times, differentiably (Chen et al. 2018, eq. (1)-(3)).

    z(t_1) = z(t_0) + int_{t_0}^{t_1} f(z(t), t, theta) dt = ODESolve(z(t_0), f, t_0, t_1, theta)

The front door: every input is checked here, once, and the keyword arguments become one frozen
`minode.solve.SolveSettings`. A 1-D ``t`` then goes to `minode.solve.solve`, a 2-D ``t`` (one
grid per sample) to `minode.time_grids`, which calls that same solve per interval; so the
engine (`minode.integrate`) and the adjoint (`minode.adjoint`) see one canonical problem.
"""
import inspect

import numpy
from autograd.tracer import getval

from minode import backend
from minode.ops import multiply
from minode.solve import solve, solve_settings
from minode.time_grids import odeint_per_sample
from minode.tree import tree_map, tree_paths


def odeint(func, y0, t, params=None, *, method="dopri5", rtol=1e-7, atol=1e-9,
           step_size=None, max_steps=10_000, min_step=0.0, first_step=None, stats=None,
           grad="adjoint", adjoint_method=None, adjoint_rtol=None, adjoint_atol=None,
           adjoint_step_size=None, seminorm=False):
    """Solve dy/dt = func(y, t, params) and return y at every time in ``t``.

    Args:
        func: ``func(y, t, params) -> dy/dt`` with ``y``'s shape and dtype; ``t`` arrives as a
            0-d array of ``y``'s dtype (with a 2-D ``t``: shape (B, 1, ..., 1), one time per
            sample, broadcastable against ``y``). Write it with `minode.ops` so that it runs on
            every backend. It is only evaluated at times inside [t[0], t[-1]], forward and
            backward (up to the rounding of a time to a float32 state's dtype).
        y0: initial state at ``t[0]``, a finite floating-point array of any shape, e.g.
            (batch, dim); a size-0 state gives outputs of size 0.
        t: 1-D, strictly increasing or strictly decreasing, at least 2 times. Or 2-D, shape
            (B, T), one such grid per sample: row b holds the times of ``y0[b]``, every row
            runs in the same direction, and rows may start at different times (solved by a
            change of time variable per sample, `minode.time_grids`). Then ``func`` must treat
            the rows of ``y`` independently (row b of dy/dt may depend only on ``y[b]`` and
            ``t[b]``); an autonomous ``func`` that ignores ``t`` needs no change.
        params: a pytree (nested tuple/list/dict) of floating-point arrays, or None. A Python
            number (int or float) reaches ``func`` as a 0-d float64 array; integer and boolean
            arrays are refused (autograd differentiates floats only). Every value that ``func``
            reads and that autograd differentiates must come in through ``params``: with
            ``grad="adjoint"``, a closure over a differentiated value is refused with an error
            (``grad="backprop"`` traces every step, closures included).
        method: a tableau name: fixed-step ``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"``
            (need ``step_size``), adaptive ``"bosh3"``, ``"dopri5"``, ``"tsit5"``; the
            implicit ``"rodas4"`` for stiff problems (`minode.rosenbrock`); or SciPy's
            ``"scipy:RK45"``, ``"scipy:DOP853"``, ``"scipy:RK23"`` (forward only) and the stiff
            ``"scipy:Radau"``, ``"scipy:BDF"``, ``"scipy:LSODA"``, differentiable once with
            ``grad="adjoint"`` (the paper's Appendix D construction, `minode.scipy_adjoint`).
        rtol, atol: tolerances of adaptive methods: a step is accepted when the RMS of
            error / (atol + rtol * max(|y_old|, |y_new|)) is at most 1.
        step_size: the step of a fixed-step method; each interval of ``t`` is split evenly.
        max_steps: most steps (accepted + rejected) of one solve before an error (minode's
            methods; SciPy's have no such limit).
        min_step: smallest adaptive step before a "step size underflow" error (minode's
            methods; a step cut short to end on an output time is not held to it).
        first_step: the first trial step of an adaptive solve, forward and backward (None:
            Hairer's estimate, which costs one evaluation); fixed-step methods ignore it.
        stats: a `SolverStats` to accumulate evaluation and step counts into.
        grad: how autograd differentiates the result.
            ``"adjoint"`` (the paper): memory independent of the number of steps; the gradient
            comes from a second, backward ODE solve (Algorithm 1) and is accurate to the solver
            tolerance. ``"backprop"`` (discretise-then-optimise, the paper's "RK-Net"): autograd
            traces every step; the exact gradient of the computed solution, faster for small
            problems, memory linear in the number of steps. The adaptive step sizes are treated
            as constants (the controller's accept/reject decisions are not differentiable, and
            their derivative would only chase the tolerance, not the solution). An output time
            inside a step is read off the dense-output polynomial, so the derivative w.r.t.
            such a time is that polynomial's, accurate to the interpolant's order rather than
            the solver's (about 1e-6 relative for dopri5 at rtol 1e-10, where the adjoint's is
            1e-9); a fixed-step method lands on every output time.
        adjoint_method, adjoint_rtol, adjoint_atol, adjoint_step_size: options of the backward
            solve, defaulting to the forward ones.
        seminorm: measure the backward error on z and a only, not on the parameter and time
            adjoints (Kidger et al. 2021): fewer backward steps at the same accuracy.

    Returns:
        An array of shape ``(len(t),) + y0.shape``; ``ys[0]`` is ``y0``. With a 2-D ``t``,
        shape ``(T, B) + y0.shape[1:]``, ``ys[i, b]`` sample b at ``t[b, i]``. Differentiable with
        autograd w.r.t. ``y0``, every entry of ``t`` and ``params``. With ``grad="adjoint"``:
        dL/dt_i = dL/dy(t_i) . func(y(t_i), t_i) for i > 0 and dL/dt_0 = -a(t_0) . func(y0, t_0),
        where a(t_0) is the adjoint just after t_0 (see `minode.adjoint`). Differentiable to
        any order in both modes (``grad`` of ``grad``, Hessian-vector products: the adjoint's
        backward pass is itself an adjoint solve, the paper's Appendix D); SciPy's Radau, BDF
        and LSODA once, with ``grad="adjoint"`` (a second derivative is refused), the other
        ``scipy:`` methods not at all. ``seminorm`` applies to minode's methods only.
    """
    _check_callable(func)
    y0 = _check_state(y0)
    t, host_t = check_times(t)
    params = _check_params(params)
    settings = solve_settings(
        method=method, rtol=rtol, atol=atol, step_size=step_size, max_steps=max_steps,
        min_step=min_step, first_step=first_step, stats=stats, grad=grad,
        adjoint_method=adjoint_method, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol,
        adjoint_step_size=adjoint_step_size, seminorm=seminorm)
    if host_t.ndim == 2:
        return odeint_per_sample(func, y0, t, host_t, params, settings)
    return solve(func, y0, t, params, settings)


def _check_callable(func):
    """``func`` must be callable with the three arguments (y, t, params)."""
    if not callable(func):
        raise TypeError(f"func must be callable as func(y, t, params), got {type(func).__name__}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise TypeError(f"func must accept three arguments, func(y, t, params) (params is "
                        f"passed even when it is None), got func{signature}") from None


def _check_state(y0):
    value = getval(y0)
    if not hasattr(value, "dtype"):
        y0 = value = backend.asarray(y0)
    if backend.name == "numpy" and not isinstance(value, backend.array_type):
        raise TypeError(f"y0 must be a NumPy array on the numpy backend, got "
                        f"{type(value).__name__}")
    if not isinstance(value, backend.array_type):
        raise TypeError(f"y0 must be an array of the active backend {backend.name!r}, got "
                        f"{type(value).__name__}; convert it with minode.backend.asarray")
    if value.dtype.kind != "f":
        raise ValueError(f"y0 must be a floating-point array (float32 or float64), got dtype "
                         f"{value.dtype}")
    if value.dtype not in (numpy.float32, numpy.float64):
        # float16: the error norm's atol + rtol |y| rounds to 0 at the default tolerances and
        # the step-size control divides by it; float128 has no CuPy or BLAS counterpart
        raise ValueError(f"y0 must be float32 or float64, got {value.dtype}; convert it, e.g. "
                         f"y0.astype('float32')")
    if value.ndim == 0:
        raise ValueError("y0 must have at least one dimension; use shape (1,) for a scalar ODE")
    if not bool(backend.xp.all(backend.xp.isfinite(value))):
        raise ValueError(f"y0 must be finite, got NaN or inf at index "
                         f"{_first_non_finite(value)} of y0 (shape {tuple(value.shape)})")
    return y0


def _first_non_finite(value):
    host = backend.to_numpy(value)
    return tuple(int(i) for i in numpy.argwhere(~numpy.isfinite(host))[0])


def check_times(t):
    """Check ``t``, 1-D (one time grid) or 2-D (one grid per row), and return
    ``(t, host copy of t as float64)``: finite, every row strictly monotone, all one way."""
    value = getval(t)
    if not hasattr(value, "ndim"):
        t = value = backend.asarray(t, dtype="float64")
    if value.ndim == 2:
        if value.shape[1] < 2:
            raise ValueError(f"a 2-D t (one time grid per sample) needs at least 2 times per "
                             f"row, got shape {value.shape}")
    elif value.ndim != 1 or value.shape[0] < 2:
        raise ValueError(f"t must be a 1-D array of at least 2 times (or 2-D: one grid per "
                         f"sample), got shape {value.shape}")
    if value.dtype.kind != "f":
        raise ValueError(f"t must be a floating-point array, got dtype {value.dtype}")
    host = backend.to_numpy(value).astype(float)
    _check_rows(numpy.atleast_2d(host), "each row of t" if host.ndim == 2 else "t")
    return t, host


def _check_rows(rows, name):
    """Every row finite and strictly monotone, all in one direction."""
    def shown(row):
        return f"row {row}: {rows[row]}" if name != "t" else f"{rows[row]}"
    finite = numpy.isfinite(rows).all(axis=1)
    if not finite.all():
        raise ValueError(f"t must be finite, got {shown(int((~finite).nonzero()[0][0]))}")
    steps = rows[:, 1:] - rows[:, :-1]
    increasing, decreasing = (steps > 0).all(axis=1), (steps < 0).all(axis=1)
    monotone = increasing | decreasing
    if not monotone.all():
        raise ValueError(f"{name} must be strictly increasing or strictly decreasing (no "
                         f"repeated times), got {shown(int((~monotone).nonzero()[0][0]))}")
    if increasing.any() and decreasing.any():
        raise ValueError(f"the rows of t must all run in the same direction, got increasing "
                         f"rows {increasing.nonzero()[0].tolist()} and decreasing rows "
                         f"{decreasing.nonzero()[0].tolist()}")


def _check_params(params):
    """``params`` with every leaf a floating-point array; a Python number (int or float, as
    in SciPy's ``args=(-1,)``) becomes a 0-d float64 array, traced along when autograd
    differentiates it. Integer and boolean arrays (and bools) are refused: their dtype says
    they are not real parameters, autograd differentiates floats only, and a gradient cast
    back to an integer dtype would be truncated."""
    if params is None:
        return None
    converted = False
    for path, leaf in tree_paths(params, "params"):
        value = getval(leaf)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            converted = True
        elif isinstance(value, (bool, numpy.bool_, numpy.integer)) or (
                hasattr(value, "dtype") and value.dtype.kind in "biu"):
            raise ValueError(f"{path} must be floating-point, got {_kind(value)}: autograd "
                             f"differentiates floats only (an integer parameter's gradient "
                             f"would be truncated). Pass it as floats, e.g. "
                             f"np.asarray(value, dtype=float), or close over it in func if "
                             f"it is a constant that is not differentiated")
        elif not hasattr(value, "dtype") or value.dtype.kind != "f":
            raise TypeError(f"{path} must be a floating-point array or a Python float, got "
                            f"{_kind(value)}")
    return tree_map(_as_float_array, params) if converted else params


def _kind(value):
    dtype = getattr(value, "dtype", None)
    return f"dtype {dtype}" if dtype is not None else type(value).__name__


def _as_float_array(leaf):
    """A Python number leaf as a 0-d float64 array (differentiably); arrays unchanged."""
    if isinstance(getval(leaf), (int, float)):
        return multiply(leaf, backend.xp.ones((), dtype="float64"))
    return leaf
