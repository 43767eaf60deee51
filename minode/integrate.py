"""The stepping engine: carry a solution across a grid of output times with one tableau.

`integrate` is the only solve loop in minode: the forward pass of `odeint`, backprop through the
solver and each interval of the adjoint's backward pass all call it. Explicit tableaux run in
the loops below; an implicit Rosenbrock method (`minode.rosenbrock`) in its own loop at the end.
Time may run either way; it is flipped to run forward here (s = -t, ds-dynamics -f), so the
loops below see one problem; their error messages turn s back into the caller's t.

``func`` is never evaluated outside the solve's interval: the stage times t + c_i h lie within a
step (0 <= c_i <= 1 in every tableau), a step that would pass the final time (a long
``first_step`` too) is cut to end there, and the first-step estimate is capped at the solve's
span (`minode.stepping.initial_step_size`). Rounding alone can still put t + c_i h a unit in
the last place past the end (t + (t_end - t) > t_end happens when the step crosses zero), so
stage times are clamped to the end; at c_i = 1, the only stage it can reach but for steps a few
units in the last place long, t_end has the derivative that t + h has.
"""
import math
from dataclasses import dataclass

from autograd.tracer import getval

from minode import backend
from minode.jacobian import linearise
from minode.rosenbrock import RosenbrockMethod
from minode.rosenbrock_step import rosenbrock_step
from minode.stepping import (initial_step_size, interpolate, rk_step, rms_error_ratio,
                             step_size_factor)
from minode.stats import Counts
from minode.stiffness import StiffnessMonitor, use_implicit_methods
from minode.tableaux import ButcherTableau


class SolverError(RuntimeError):
    """A solve could not continue (step size underflow, too many steps, non-finite state).

    Where an adaptive solve runs out of steps or its step collapses, the message says whether
    the problem appears stiff, with the evidence, and names the implicit methods to use
    (`minode.stiffness`).
    """


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: the method and either a fixed ``step_size`` or tolerances for adaptivity.

    ``tableau`` is an explicit `ButcherTableau` or an implicit `RosenbrockMethod` (adaptive).

    ``max_steps`` bounds the steps (accepted and rejected) of one solve; ``min_step`` is the
    smallest adaptive step allowed before giving up. ``first_step`` is an adaptive solve's
    first trial step when the caller gives none (None: Hairer's estimate, one evaluation).
    """

    tableau: ButcherTableau | RosenbrockMethod
    rtol: float = 1e-7
    atol: float = 1e-9
    step_size: float | None = None
    max_steps: int = 10_000
    min_step: float = 0.0
    first_step: float | None = None


def host_times(t):
    """The entries of a 1-D time array as Python floats: the engine's clock runs on the host."""
    return [float(x) for x in backend.to_numpy(t)]


def integrate(rhs, y0, times, options, counts, *, error_ratio=rms_error_ratio, quadratures=0):
    """Solve dy/dt = rhs(y, t) from ``times[0]`` and return ``(outputs, next_step)``.

    ``outputs[i]`` is y at ``times[i + 1]``; ``times`` is strictly monotone. With a fixed
    ``options.step_size`` every interval is split into equal steps no longer than it, landing
    exactly on each output time; otherwise the step is adapted to ``rtol``/``atol`` and outputs
    come from dense output, so output times cost no extra steps. ``next_step`` is the step size
    the controller would try next (for fixed steps, the step used), so a following solve can
    start from it (as its ``options.first_step``, the one place a first step is read). ``counts``
    (a `minode.stats.Counts`) is incremented in place.
    ``error_ratio(error, y0, y1, rtol, atol)`` is the norm of error control (RMS by default).
    ``quadratures``: the last that many entries of the flattened state are quadratures, which
    ``rhs`` never reads (as a_theta and a_t of the adjoint's augmented state); an implicit
    method then factorises the Jacobian of the other entries only (`minode.jacobian`).
    """
    direction = 1.0 if getval(times[-1]) > getval(times[0]) else -1.0
    this_solve = Counts()  # limits and error messages speak of this solve alone
    grid = list(times) if direction > 0 else [-t for t in times]
    s_end, s_end_value = grid[-1], float(getval(grid[-1]))

    def forward_rhs(y, s):
        this_solve.nfe += 1
        if float(getval(s)) > s_end_value:
            s = s_end  # past the end by rounding only (see the module docstring)
        if direction > 0:
            return rhs(y, s)
        return -rhs(y, -s)

    try:
        if isinstance(options.tableau, RosenbrockMethod):
            return _integrate_rosenbrock(forward_rhs, y0, grid, options, this_solve, direction,
                                         error_ratio, quadratures)
        if options.step_size is not None:
            return _integrate_fixed(forward_rhs, y0, grid, options, this_solve, direction)
        return _integrate_adaptive(forward_rhs, y0, grid, options, this_solve, direction,
                                   options.first_step, error_ratio)
    finally:
        counts.add(this_solve)


def _user_time(s, direction):
    """The caller's time t of the engine's forward-running time s (s = -t when t decreases)."""
    return direction * float(getval(s))


def _check_finite(y, t_user, step_number, cause):
    xp = backend.xp
    if not bool(xp.all(xp.isfinite(getval(y)))):
        raise SolverError(f"the state became non-finite (NaN or inf) at t={t_user:.6g}, "
                          f"step {step_number}: {cause}")


def _integrate_fixed(rhs, y0, grid, options, counts, direction):
    step_size, max_steps = options.step_size, options.max_steps
    outputs, y = [], y0
    for t_start, t_stop in zip(grid[:-1], grid[1:]):
        span = t_stop - t_start
        n_steps = max(1, math.ceil(float(getval(span)) / step_size - 1e-9))
        if counts.steps + n_steps > max_steps:
            raise SolverError(f"max_steps={max_steps} exceeded: step_size={step_size} needs "
                              f"{counts.steps + n_steps} steps to reach "
                              f"t={_user_time(t_stop, direction):.6g}")
        h = span / n_steps  # differentiable in the interval ends, unlike the adaptive h
        for j in range(n_steps):
            t = t_start + j * h
            y, _, _ = rk_step(rhs, options.tableau, y, t, h, rhs(y, t))
            counts.steps += 1
            _check_finite(y, _user_time(t + h, direction), counts.steps,
                          "reduce step_size or check func")
        outputs.append(y)
    return outputs, step_size


def _integrate_adaptive(rhs, y0, grid, options, counts, direction, first_step, error_ratio):
    tableau, rtol, atol = options.tableau, options.rtol, options.atol
    t, y, t_end = grid[0], y0, grid[-1]
    f = rhs(y, t)
    _check_finite(f, _user_time(t, direction), 0,
                  "func returned a non-finite derivative at the initial state")
    proposal = first_step  # the step size the controller asks for next, a float
    if proposal is None:
        proposal = initial_step_size(rhs, getval(y), getval(f), getval(t), tableau.error_order,
                                     rtol, atol, error_ratio,
                                     max_step=float(getval(t_end) - getval(t)))
    outputs = []
    attempts, last_trial_finite = 0, True
    stiffness = StiffnessMonitor(tableau, direction)
    while len(outputs) < len(grid) - 1:
        _check_attempts(attempts, options.max_steps, _user_time(t, direction), counts, stiffness)
        attempts += 1
        clipped = float(getval(t)) + proposal >= float(getval(t_end))
        # h is the step taken. The last step ends exactly at t_end; written as t_end - t it
        # stays differentiable in the end times, so backprop gets dy/dt_0 and dy/dt_N (the
        # other steps are constants).
        h = t_end - t if clipped else proposal
        h_value = float(getval(h))
        _check_step_size(h_value, proposal, t, direction, options.min_step, counts,
                         last_trial_finite, stiffness)
        y_next, error, stages = rk_step(rhs, tableau, y, t, h, f)
        ratio = error_ratio(getval(error), getval(y), getval(y_next), rtol, atol)
        last_trial_finite = math.isfinite(ratio)
        if not last_trial_finite:
            counts.rejected += 1
            proposal = 0.2 * h_value  # a non-finite trial step: shrink hard and try again
            continue
        factor = step_size_factor(ratio, tableau.error_order)
        if ratio > 1.0:
            counts.rejected += 1
            proposal = h_value * factor
            continue
        counts.steps += 1
        stiffness.record(stages, h_value, t, y, rtol, atol)
        t_next = t_end if clipped else t + h
        outputs += _outputs_in_step(grid[len(outputs) + 1:], t, t_next, h, y, y_next, stages,
                                    tableau)
        t, y, f = t_next, y_next, stages[-1]
        # A step clipped to end at t_end is shorter than the controller asked for by choice,
        # not because the error was large, so the proposal handed on (``next_step``, where the
        # adjoint's next interval starts) does not shrink below the one before clipping.
        proposal = max(h_value * factor, proposal) if clipped else h_value * factor
    return outputs, proposal


def _check_attempts(attempts, max_steps, t_user, counts, stiffness):
    if attempts < max_steps:
        return
    where = (f"max_steps={max_steps} exceeded at t={t_user:.6g} after {counts.nfe} function "
             f"evaluations")
    if stiffness.appears_stiff:
        raise SolverError(f"{where}: {stiffness.evidence()}. A larger max_steps or a looser "
                          f"rtol/atol buys little: {use_implicit_methods()}")
    raise SolverError(f"{where}; raise max_steps or loosen rtol/atol")


def _check_step_size(h, asked, t, direction, min_step, counts, last_trial_finite, stiffness):
    """Raise unless the step ``h`` moves t and the controller's step ``asked`` (h before it
    was cut to end on the last output time) is at least ``min_step``."""
    t_value = float(getval(t))  # the engine's time: h must still move it
    if asked >= min_step and t_value + h != t_value:
        return
    where = (f"at t={direction * t_value:.6g}, step {counts.steps + 1} (h={h:.3g}, "
             f"min_step={min_step:g}, {counts.nfe} function evaluations, {counts.rejected} "
             f"rejected steps)")
    if not last_trial_finite:
        raise SolverError(f"the state became non-finite (NaN or inf) {where}: every smaller "
                          f"trial step failed too; check func for NaN/inf")
    if stiffness.appears_stiff:
        raise SolverError(f"step size underflow {where}: {stiffness.evidence()}. Either "
                          f"{use_implicit_methods()} or a smaller min_step")
    singular = "the solution may be singular here (it blows up, or func is not smooth)"
    if not stiffness.can_tell:
        raise SolverError(f"step size underflow {where}: {singular}, or the problem stiff (too "
                          f"few accepted steps to tell); check func, loosen rtol/atol or use a "
                          f"smaller min_step, or if it is stiff {use_implicit_methods()}")
    raise SolverError(f"step size underflow {where}: {singular}; check func, loosen rtol/atol "
                      f"or use a smaller min_step")


def _outputs_in_step(times, t, t_next, h, y, y_next, stages, tableau):
    """y at the leading ``times`` that the accepted step from t to t_next reaches."""
    outputs = []
    for t_out in times:
        if getval(t_out) > getval(t_next):
            break
        outputs.append(y_next if getval(t_out) == getval(t_next)
                       else interpolate(tableau, y, h, stages, (t_out - t) / h))
    return outputs


# ---------------------------------------------------------------------------------------------
# Implicit methods
# ---------------------------------------------------------------------------------------------

def _integrate_rosenbrock(rhs, y0, grid, options, counts, direction, error_ratio, quadratures):
    """The adaptive loop of a Rosenbrock method (`minode.rosenbrock_step`).

    The error control and the step-size controller are the explicit pairs' (with the
    embedded solution's ``error_order``); the Jacobian is evaluated once per accepted step
    and reused by the retries of a rejected one (it does not depend on h), while each trial
    factorises I / gamma - h J anew. As in Hairer's RODAS, the step after a rejection does
    not grow.
    """
    method, rtol, atol = options.tableau, options.rtol, options.atol
    t, y, t_end = grid[0], y0, grid[-1]
    linearisation = _linearise(rhs, y, t, quadratures, counts, direction)
    proposal = options.first_step
    if proposal is None:
        proposal = initial_step_size(rhs, getval(y), getval(linearisation.value), getval(t),
                                     method.error_order, rtol, atol, error_ratio,
                                     max_step=float(getval(t_end) - getval(t)))
    outputs, attempts, rejected_in_a_row, last_trial_finite = [], 0, 0, True
    while len(outputs) < len(grid) - 1:
        if attempts >= options.max_steps:
            raise SolverError(f"max_steps={options.max_steps} exceeded at "
                              f"t={_user_time(t, direction):.6g} after {counts.nfe} function "
                              f"evaluations and {counts.jacobians} Jacobians ({counts.steps} "
                              f"steps, {counts.rejected} rejected); raise max_steps or loosen "
                              f"rtol/atol")
        attempts += 1
        if linearisation is None:
            linearisation = _linearise(rhs, y, t, quadratures, counts, direction)
        clipped = float(getval(t)) + proposal >= float(getval(t_end))
        h = t_end - t if clipped else proposal  # as in _integrate_adaptive
        h_value = float(getval(h))
        _check_implicit_step_size(h_value, proposal, t, direction, options, method, counts,
                                  rejected_in_a_row, last_trial_finite)
        trial = rosenbrock_step(rhs, method, y, t, h, linearisation)
        counts.factorisations += 1
        ratio = math.inf if trial is None else error_ratio(getval(trial[1]), getval(y),
                                                           getval(trial[0]), rtol, atol)
        last_trial_finite = math.isfinite(ratio)
        if not last_trial_finite or ratio > 1.0:
            counts.rejected += 1
            rejected_in_a_row += 1
            factor = step_size_factor(ratio, method.error_order) if last_trial_finite else 0.2
            proposal = h_value * factor
            continue
        y_next, _, stages = trial
        counts.steps += 1
        t_next = t_end if clipped else t + h
        outputs += _outputs_in_step(grid[len(outputs) + 1:], t, t_next, h, y, y_next, stages,
                                    method)
        factor = step_size_factor(ratio, method.error_order)
        if rejected_in_a_row:
            factor = min(factor, 1.0)
        proposal = max(h_value * factor, proposal) if clipped else h_value * factor
        t, y, linearisation, rejected_in_a_row = t_next, y_next, None, 0
    return outputs, proposal


def _linearise(rhs, y, t, quadratures, counts, direction):
    """`minode.jacobian.linearise`, counted, with f and J checked to be finite."""
    linearisation = linearise(rhs, y, t, quadratures)
    counts.jacobians += 1
    t_user = _user_time(t, direction)
    _check_finite(linearisation.value, t_user, counts.steps,
                  "func returned a non-finite derivative")
    if not bool(backend.xp.all(backend.xp.isfinite(getval(linearisation.jacobian)))):
        raise SolverError(f"the Jacobian df/dy of func (by autograd) is not finite at "
                          f"t={t_user:.6g}, step {counts.steps}: an implicit method needs func "
                          f"differentiable in y along the solution (e.g. no sqrt or log at 0)")
    return linearisation


def _check_implicit_step_size(h, asked, t, direction, options, method, counts,
                              rejected_in_a_row, last_trial_finite):
    """`_check_step_size` for a Rosenbrock method: ``asked`` against min_step, ``h`` moving t."""
    t_value = float(getval(t))
    if asked >= options.min_step and t_value + h != t_value:
        return
    where = (f"at t={direction * t_value:.6g}, step {counts.steps + 1} (h={h:.3g}, "
             f"min_step={options.min_step:g}, {rejected_in_a_row} trial steps rejected in a "
             f"row, {counts.nfe} function evaluations)")
    if not last_trial_finite:
        raise SolverError(f"step size underflow {where}: the trial steps of {method.name!r} "
                          f"gave non-finite values (NaN or inf) however small the step; check "
                          f"func for NaN/inf")
    raise SolverError(f"step size underflow {where}: {method.name!r} needs steps too short to "
                      f"move t; the solution may be singular here (it blows up, or func is not "
                      f"smooth); check func, loosen rtol/atol or use a smaller min_step")
