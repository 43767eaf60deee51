"""``odeint``: solve an ODE at a grid of times, differentiably (Chen et al. 2018, eq. (1)-(3)).

    z(t_1) = z(t_0) + int_{t_0}^{t_1} f(z(t), t, theta) dt = ODESolve(z(t_0), f, t_0, t_1, theta)

Inputs are checked and normalised here, once, so that the engine (`minode.integrate`) and the
adjoint (`minode.adjoint`) see one canonical problem.
"""
import math

from autograd.tracer import getval, isbox

from minode import backend
from minode.checks import (check_choice, check_nonnegative, check_positive,
                           check_positive_int)
from minode.adjoint import AdjointProblem, odeint_adjoint
from minode.dynamics import vector_field
from minode.integrate import SolveOptions, host_times, integrate
from minode.ops import stack
from minode.scipy_bridge import SCIPY_METHODS, solve_with_scipy
from minode.stats import SolverStats
from minode.tableaux import TABLEAUX
from minode.time_grids import is_per_sample, odeint_per_sample
from minode.tree import flatten, tree_leaves

GRAD_MODES = ("adjoint", "backprop")


def odeint(func, y0, t, params=None, *, method="dopri5", rtol=1e-7, atol=1e-9,
           step_size=None, max_steps=10_000, min_step=0.0, first_step=None, stats=None,
           grad="adjoint", adjoint_method=None, adjoint_rtol=None, adjoint_atol=None,
           adjoint_step_size=None, seminorm=False):
    """Solve dy/dt = func(y, t, params) and return y at every time in ``t``.

    Args:
        func: ``func(y, t, params) -> dy/dt`` with ``y``'s shape and dtype; ``t`` arrives as a
            0-d array of ``y``'s dtype (with a 2-D ``t``: shape (B, 1, ..., 1), one time per
            sample, broadcastable against ``y``). Write it with `minode.ops` so that it runs on
            every backend.
        y0: initial state at ``t[0]``, a floating-point array of any shape, e.g. (batch, dim).
        t: 1-D, strictly increasing or strictly decreasing, at least 2 times. Or 2-D, shape
            (B, T), one such grid per sample: row b holds the times of ``y0[b]``, every row
            runs in the same direction, and rows may start at different times (solved by a
            change of time variable per sample, `minode.time_grids`). Then ``func`` must treat
            the rows of ``y`` independently (row b of dy/dt may depend only on ``y[b]`` and
            ``t[b]``); an autonomous ``func`` that ignores ``t`` needs no change.
        params: a pytree (nested tuple/list/dict) of arrays, or None.
        method: a tableau name: fixed-step ``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"``
            (need ``step_size``), adaptive ``"bosh3"``, ``"dopri5"``, ``"tsit5"``; or a SciPy
            reference ``"scipy:RK45"``, ``"scipy:DOP853"``, ``"scipy:LSODA"``, ... (forward only).
        rtol, atol: tolerances of adaptive methods: a step is accepted when the RMS of
            error / (atol + rtol * max(|y_old|, |y_new|)) is at most 1.
        step_size: the step of a fixed-step method; each interval of ``t`` is split evenly.
        max_steps: most steps (accepted + rejected) of one solve before an error.
        min_step: smallest adaptive step before a "step size underflow" error.
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
            their derivative would only chase the tolerance, not the solution).
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
        backward pass is itself an adjoint solve, the paper's Appendix D); ``scipy:`` methods
        not at all.
    """
    _check_callable(func)
    y0 = _check_state(y0)
    check_choice("grad", grad, GRAD_MODES)
    stats = _check_stats(stats)
    check_positive_int("max_steps", max_steps)
    check_nonnegative("min_step", min_step)
    if first_step is not None:
        check_positive("first_step", first_step)
    if is_per_sample(t):
        options = {"method": method, "rtol": rtol, "atol": atol, "step_size": step_size,
                   "max_steps": max_steps, "min_step": min_step, "first_step": first_step,
                   "stats": stats, "grad": grad, "adjoint_method": adjoint_method,
                   "adjoint_rtol": adjoint_rtol, "adjoint_atol": adjoint_atol,
                   "adjoint_step_size": adjoint_step_size, "seminorm": seminorm}
        return odeint_per_sample(odeint, func, y0, t, params, options)
    t = _check_times(t)
    scipy_method = _scipy_method(method)
    if scipy_method is not None:
        return _odeint_scipy(func, y0, t, params, scipy_method, rtol, atol, stats)
    forward = _solve_options(method, rtol, atol, step_size, max_steps, min_step, first_step,
                             "")
    if grad == "backprop":
        return _odeint_backprop(func, y0, t, params, forward, stats)
    backward = _adjoint_options(forward, adjoint_method, adjoint_rtol, adjoint_atol,
                                adjoint_step_size)
    theta, unflatten = flatten(params)
    problem = AdjointProblem(func, unflatten, forward, backward, bool(seminorm), stats)
    return odeint_adjoint(y0, t, theta, problem)


def _odeint_backprop(func, y0, t, params, options, stats):
    """Solve with every step traced by autograd (discretise-then-optimise)."""
    times = [t[i] for i in range(len(t))] if isbox(t) else host_times(t)
    outputs, _ = integrate(vector_field(func, params), y0, times, options, stats.forward)
    return stack([y0] + outputs)


def _scipy_method(method):
    """The SciPy method's name for ``method="scipy:NAME"``; None for anything else."""
    if not (isinstance(method, str) and method.startswith("scipy:")):
        return None
    scipy_method = method[len("scipy:"):]
    check_choice("method", scipy_method, SCIPY_METHODS, prefix="scipy:")
    return scipy_method


def _odeint_scipy(func, y0, t, params, scipy_method, rtol, atol, stats):
    """Solve with SciPy's ``solve_ivp``: a forward-only reference (`minode.scipy_bridge`)."""
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    if any(isbox(x) for x in [y0, t] + (tree_leaves(params) if params is not None else [])):
        raise ValueError(f"method 'scipy:{scipy_method}' is forward-only and cannot be "
                         "differentiated; use a minode tableau such as 'dopri5'")
    return solve_with_scipy(vector_field(func, params), y0, backend.to_numpy(t),
                            scipy_method, rtol, atol, stats.forward)


def _solve_options(method, rtol, atol, step_size, max_steps, min_step, first_step, prefix):
    """Check the arguments of a solve with a minode tableau and return its `SolveOptions`.

    ``prefix`` is "adjoint_" for the backward solve, so that errors name the argument.
    """
    if not isinstance(method, str):
        raise ValueError(f"{prefix}method must be a string, got {method!r}")
    check_choice(f"{prefix}method", method, tuple(TABLEAUX))
    tableau = TABLEAUX[method]
    if tableau.adaptive:
        if step_size is not None:
            raise ValueError(f"{prefix}step_size must be None for the adaptive method "
                             f"{method!r} (it chooses its own steps); got {step_size!r}")
        check_positive(f"{prefix}rtol", rtol)
        check_positive(f"{prefix}atol", atol)
    else:
        if step_size is None:
            raise ValueError(f"{prefix}step_size is required for the fixed-step method "
                             f"{method!r}; pass e.g. step_size=0.01 or use 'dopri5'")
        check_positive(f"{prefix}step_size", step_size)
    return SolveOptions(tableau, float(rtol), float(atol),
                        None if step_size is None else float(step_size), max_steps, min_step,
                        None if first_step is None else float(first_step))


def _adjoint_options(forward, method, rtol, atol, step_size):
    """The options of the adjoint's backward solve (Algorithm 1), from `odeint`'s adjoint_*.

    Each one left as None is the forward solve's, except the step size of an adaptive backward
    method, which chooses its own steps.
    """
    if method is None:
        method = forward.tableau.name
    if isinstance(method, str) and method.startswith("scipy:"):
        raise ValueError(f"adjoint_method must be a minode tableau, got {method!r}: scipy "
                         "methods cannot run the backward solve")
    adaptive = isinstance(method, str) and method in TABLEAUX and TABLEAUX[method].adaptive
    if step_size is None and not adaptive:
        step_size = forward.step_size
    return _solve_options(method, forward.rtol if rtol is None else rtol,
                          forward.atol if atol is None else atol, step_size,
                          forward.max_steps, forward.min_step, forward.first_step, "adjoint_")


def _check_callable(func):
    if not callable(func):
        raise TypeError(f"func must be callable as func(y, t, params), got {type(func).__name__}")


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
    if value.ndim == 0:
        raise ValueError("y0 must have at least one dimension; use shape (1,) for a scalar ODE")
    return y0


def _check_times(t):
    value = getval(t)
    if not hasattr(value, "ndim"):
        t = value = backend.asarray(t, dtype="float64")
    if value.ndim != 1 or value.shape[0] < 2:
        raise ValueError(f"t must be a 1-D array of at least 2 times, got shape {value.shape}")
    if value.dtype.kind != "f":
        raise ValueError(f"t must be a floating-point array, got dtype {value.dtype}")
    host = backend.to_numpy(value)
    if not all(math.isfinite(x) for x in host.tolist()):
        raise ValueError(f"t must be finite, got {host}")
    steps = host[1:] - host[:-1]
    if not ((steps > 0).all() or (steps < 0).all()):
        raise ValueError("t must be strictly increasing or strictly decreasing (no repeated "
                         f"times), got {host}")
    return t


def _check_stats(stats):
    if stats is None:
        return SolverStats()
    if not isinstance(stats, SolverStats):
        raise TypeError(f"stats must be a minode.SolverStats or None, got {type(stats).__name__}")
    return stats
