"""The checked solve over one 1-D time grid: settings checked once, then one of three paths.

`odeint` checks its keyword arguments once into a frozen `SolveSettings` and hands it, with the
checked ``func``, ``y0``, ``t`` and ``params``, to `solve` (a 1-D ``t``) or to
`minode.time_grids` (a 2-D ``t``, which calls `solve` once per interval or shared run). `solve`
picks the path by the settings:

    a SciPy method      `minode.scipy_bridge` when nothing is differentiated; under
                        differentiation, with grad="adjoint" and Radau, BDF or LSODA,
                        `minode.scipy_adjoint.odeint_scipy_adjoint` (the adjoint equations
                        solved backwards by SciPy), and a refusal naming those otherwise;
    grad="backprop"     `minode.integrate` with every step traced by autograd (sec. 3, "RK-Net");
    grad="adjoint"      `minode.adjoint.odeint_adjoint`, whose VJP is Algorithm 1.
"""
import math
from dataclasses import dataclass, replace

from autograd.tracer import isbox

from minode import backend
from minode.adjoint import AdjointProblem, odeint_adjoint
from minode.checks import check_choice, check_nonnegative, check_positive, check_positive_int
from minode.dynamics import vector_field
from minode.integrate import SolveOptions, host_times, integrate
from minode.ops import stack
from minode.rosenbrock import ROSENBROCK_METHODS
from minode.scipy_adjoint import (DIFFERENTIABLE_METHODS, ScipyAdjointProblem,
                                  odeint_scipy_adjoint)
from minode.scipy_bridge import SCIPY_CANNOT, SCIPY_METHODS, solve_with_scipy
from minode.stats import SolverStats
from minode.tableaux import TABLEAUX
from minode.tree import flatten, tree_leaves

__all__ = ["GRAD_MODES", "ScipyOptions", "SolveSettings", "solve_settings", "solve"]

GRAD_MODES = ("adjoint", "backprop")
# Every minode method by name: the explicit tableaux, then the implicit (Rosenbrock) methods.
_METHODS = {**TABLEAUX, **ROSENBROCK_METHODS}
_DIFFERENTIABLE = ", ".join(f"'scipy:{name}'" for name in DIFFERENTIABLE_METHODS)


@dataclass(frozen=True)
class ScipyOptions:
    """A solve by SciPy's ``solve_ivp(method)`` at tolerances ``rtol``/``atol``, starting with
    ``first_step`` (None: SciPy's own estimate)."""

    method: str
    rtol: float
    atol: float
    first_step: float | None = None


@dataclass(frozen=True)
class SolveSettings:
    """Everything `odeint` was told about how to solve, checked.

    ``forward`` is a `SolveOptions` for a minode tableau or a `ScipyOptions`; ``backward`` the
    options of the adjoint's backward solve, of the same kind (None unless
    ``grad == "adjoint"``). ``stats`` receives the counts of every solve made with these
    settings.
    """

    forward: SolveOptions | ScipyOptions
    backward: SolveOptions | ScipyOptions | None
    grad: str
    seminorm: bool
    stats: SolverStats

    def in_time_units(self, unit):
        """These settings for a time variable s with t = unit * s (`minode.time_grids`).

        Lengths in units of t become lengths in s: ``min_step`` and ``first_step`` are divided
        by ``unit`` (``first_step`` at most 1, one interval; None becomes 1, so an interval
        starts by trying itself whole), and a fixed ``step_size`` becomes
        1 / ceil(unit / step_size), so that no step is longer than asked. A SciPy method's
        ``first_step`` is divided likewise, and None stays None (SciPy's own estimate).
        """
        if isinstance(self.forward, ScipyOptions):
            backward = None if self.backward is None else _scipy_in_time_units(self.backward,
                                                                               unit)
            return replace(self, forward=_scipy_in_time_units(self.forward, unit),
                           backward=backward)
        backward = None if self.backward is None else _options_in_time_units(self.backward, unit)
        return replace(self, forward=_options_in_time_units(self.forward, unit),
                       backward=backward)


def _scipy_in_time_units(options, unit):
    if options.first_step is None:
        return options
    return replace(options, first_step=min(1.0, options.first_step / unit))


def _options_in_time_units(options, unit):
    step_size = options.step_size
    if step_size is not None:
        step_size = 1.0 / max(1, math.ceil(unit / step_size - 1e-9))
    first_step = 1.0 if options.first_step is None else min(1.0, options.first_step / unit)
    return replace(options, step_size=step_size, min_step=options.min_step / unit,
                   first_step=first_step)


def solve_settings(*, method, rtol, atol, step_size, max_steps, min_step, first_step, stats,
                   grad, adjoint_method, adjoint_rtol, adjoint_atol, adjoint_step_size,
                   seminorm):
    """Check `odeint`'s keyword arguments and return them as one `SolveSettings`.

    Each error names the argument as `odeint` spells it.
    """
    check_choice("grad", grad, GRAD_MODES)
    check_positive_int("max_steps", max_steps)
    check_nonnegative("min_step", min_step)
    if first_step is not None:
        check_positive("first_step", first_step)
    stats = _check_stats(stats)
    scipy_method = _scipy_method(method)
    if scipy_method is not None:
        check_positive("rtol", rtol)
        check_positive("atol", atol)
        if step_size is not None:
            raise ValueError(f"step_size must be None for method {method!r}: SciPy's methods "
                             f"choose their own steps; got {step_size!r}")
        if seminorm:
            raise ValueError(f"seminorm=True applies to minode's own backward solve; SciPy's "
                             f"methods measure the error of the whole state. Pass "
                             f"seminorm=False with method {method!r}")
        options = ScipyOptions(scipy_method, float(rtol), float(atol),
                               None if first_step is None else float(first_step))
        backward = None
        if grad == "adjoint":
            backward = _scipy_adjoint_options(options, adjoint_method, adjoint_rtol,
                                              adjoint_atol, adjoint_step_size)
        return SolveSettings(options, backward, grad, False, stats)
    forward = _solve_options(method, rtol, atol, step_size, max_steps, min_step, first_step, "")
    backward = None
    if grad == "adjoint":
        backward = _adjoint_options(forward, adjoint_method, adjoint_rtol, adjoint_atol,
                                    adjoint_step_size)
    return SolveSettings(forward, backward, grad, bool(seminorm), stats)


def solve(func, y0, t, params, settings):
    """y at every time of the checked 1-D ``t``, shape (len(t),) + y0.shape, by ``settings``.

    ``func``, ``y0``, ``t`` and ``params`` are as `odeint` checked them; differentiable by
    autograd w.r.t. ``y0``, ``t`` and ``params``, except by SciPy's explicit methods and by any
    SciPy method with ``grad="backprop"``.
    """
    if isinstance(settings.forward, ScipyOptions):
        return _solve_scipy(func, y0, t, params, settings)
    if settings.grad == "backprop":
        return _solve_backprop(func, y0, t, params, settings)
    theta, unflatten = flatten(params)
    problem = AdjointProblem(func, unflatten, settings.forward, settings.backward,
                             settings.seminorm, settings.stats)
    return odeint_adjoint(y0, t, theta, problem)


def _solve_backprop(func, y0, t, params, settings):
    """Solve with every step traced by autograd (discretise-then-optimise)."""
    times = [t[i] for i in range(len(t))] if isbox(t) else host_times(t)
    outputs, _ = integrate(vector_field(func, params), y0, times, settings.forward,
                           settings.stats.forward)
    return stack([y0] + outputs)


def _solve_scipy(func, y0, t, params, settings):
    """Solve with SciPy's ``solve_ivp`` (`minode.scipy_bridge`); under differentiation, with
    ``grad="adjoint"`` and a stiff method, through `minode.scipy_adjoint`."""
    options = settings.forward
    if not any(isbox(x) for x in [y0, t] + tree_leaves(params)):
        return solve_with_scipy(vector_field(func, params, SCIPY_CANNOT), y0,
                                backend.to_numpy(t), options, settings.stats.forward)
    if settings.grad == "backprop":
        raise ValueError(f"method 'scipy:{options.method}' is forward-only under "
                         f"grad='backprop': SciPy's steps run on NumPy arrays, outside "
                         f"autograd's trace. Use grad='adjoint' with {_DIFFERENTIABLE} (a "
                         f"backward SciPy solve), or a minode tableau such as 'dopri5'")
    if options.method not in DIFFERENTIABLE_METHODS:
        raise ValueError(f"method 'scipy:{options.method}' is forward-only and cannot be "
                         f"differentiated; use {_DIFFERENTIABLE} with grad='adjoint', or a "
                         f"minode tableau such as 'dopri5'")
    theta, unflatten = flatten(params)
    problem = ScipyAdjointProblem(func, unflatten, options, settings.backward, settings.stats)
    return odeint_scipy_adjoint(y0, t, theta, problem)


def _scipy_method(method):
    """The SciPy method's name for ``method="scipy:NAME"``; None for anything else."""
    if not (isinstance(method, str) and method.startswith("scipy:")):
        return None
    scipy_method = method[len("scipy:"):]
    check_choice("method", scipy_method, SCIPY_METHODS, prefix="scipy:")
    return scipy_method


def _solve_options(method, rtol, atol, step_size, max_steps, min_step, first_step, prefix):
    """Check the arguments of a solve with a minode tableau and return its `SolveOptions`.

    ``prefix`` is "adjoint_" for the backward solve, so that errors name the argument.
    """
    if not isinstance(method, str):
        raise ValueError(f"{prefix}method must be a string, got {method!r}")
    check_choice(f"{prefix}method", method, tuple(_METHODS))
    tableau = _METHODS[method]
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
                        None if step_size is None else float(step_size), max_steps,
                        float(min_step), None if first_step is None else float(first_step))


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
    adaptive = isinstance(method, str) and method in _METHODS and _METHODS[method].adaptive
    if step_size is None and not adaptive:
        step_size = forward.step_size
    return _solve_options(method, forward.rtol if rtol is None else rtol,
                          forward.atol if atol is None else atol, step_size,
                          forward.max_steps, forward.min_step, forward.first_step, "adjoint_")


def _scipy_adjoint_options(forward, method, rtol, atol, step_size):
    """The `ScipyOptions` of the adjoint's backward solve after a SciPy ``forward`` solve:
    ``method`` (None: the forward one) one of the differentiable SciPy methods, ``rtol`` and
    ``atol`` the forward ones unless given."""
    if step_size is not None:
        raise ValueError(f"adjoint_step_size must be None with method "
                         f"'scipy:{forward.method}': SciPy's methods choose their own steps; "
                         f"got {step_size!r}")
    if method is None:
        method = forward.method
    else:
        choices = [f"scipy:{name}" for name in DIFFERENTIABLE_METHODS]
        if method not in choices:
            raise ValueError(f"adjoint_method must be None or one of {choices} with method "
                             f"'scipy:{forward.method}' (the backward solve after a SciPy "
                             f"solve is SciPy's), got {method!r}")
        method = method[len("scipy:"):]
    rtol = forward.rtol if rtol is None else rtol
    atol = forward.atol if atol is None else atol
    check_positive("adjoint_rtol", rtol)
    check_positive("adjoint_atol", atol)
    return ScipyOptions(method, float(rtol), float(atol), forward.first_step)


def _check_stats(stats):
    if stats is None:
        return SolverStats()
    if not isinstance(stats, SolverStats):
        raise TypeError(f"stats must be a minode.SolverStats or None, got {type(stats).__name__}")
    return stats
