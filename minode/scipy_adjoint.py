"""SciPy's stiff solvers, differentiable by the adjoint, as the paper's Appendix D pairs SciPy's
LSODA with autograd (there z is solved backwards too: below, why it is not here).

With ``method="scipy:Radau"``, ``"scipy:BDF"`` or ``"scipy:LSODA"`` and ``grad="adjoint"``,
`odeint_scipy_adjoint` solves forward with ``scipy.integrate.solve_ivp`` at the output times
(`minode.scipy_bridge`: the same solve, and the same values, as when nothing is
differentiated), and its VJP solves the adjoint equations of Algorithm 1 backwards with a SciPy
method (the forward one unless ``adjoint_method`` names another of the three):

    da/dt = -a^T df/dz,   da_theta/dt = -a^T df/dtheta,   da_t/dt = -a^T df/dt,

with the dynamics of `minode.adjoint.augmented_dynamics` (one vector-Jacobian product of f
per evaluation), interval by interval: at each output time t_i, a jumps by dL/dz(t_i) and

    dL/dt_i = dL/dz(t_i) . f(z(t_i), t_i)    (i > 0),    dL/dt_0 = -a(t_0) . f(z(t_0), t_0).

z(t) is not solved backwards, as Algorithm 1 does, but read off the forward solve's dense
output (SciPy's ``OdeSolution``; DiffEqSensitivity.jl calls this the interpolating adjoint).
On a stiff problem z solved backwards is unstable: a mode that decays like e^(lambda t) forward
grows like e^(|lambda| (t_i - t)) backwards, from the forward solve's error in it. On
y' = A y with eigenvalues -1 and -1000, minode's own dopri5 adjoint (rtol = atol = 1e-10)
returns dL/dA with a relative error of 3e-4 over [0, 0.02], 2e9 over [0, 0.05] and 1e204 over
[0, 0.5] (dL/dy0 is unaffected there: on a linear problem a does not depend on z). The cost is
memory: the interpolants of every forward step (a few vectors of the state's size each) are
kept from the forward solve to the backward one, where Algorithm 1 keeps the outputs only; a
stiff solver takes few steps.

The adjoint of a stiff problem is stiff too (da/dt = -J^T a with J = df/dz decays backwards
as fast as z decays forwards), hence the implicit method, with the Jacobian of the backward
dynamics from autograd (`adjoint_jacobian`): w.r.t. [a, a_theta, a_t] it is -J^T in the
leading n x n block and zero elsewhere. J comes from n vector-Jacobian products of f at z(t),
the k-th with the unit vector e_k giving row k. The columns of a_theta and a_t are zero
exactly (nothing depends on them: they are quadratures); their rows, -(df/dtheta)^T and
-(df/dt)^T against a, are left zero. The Jacobian of Radau, BDF and LSODA only enters their
Newton iteration matrix I/(h gamma) - J (and Radau's error filter), never the discrete
solution, so leaving the quadratures' coupling out delays each Newton correction of a_theta
and a_t by one iteration and changes no converged value; and it keeps the work of a Jacobian
independent of the number of parameters p (SciPy's finite differences would take n + p
evaluations, and a dense LU of size n + p would be cubic in p). So Radau and BDF get a sparse
(CSC) matrix when the quadratures outnumber the entries of a, and LSODA, which takes no sparse
matrix, gets it banded (bandwidth n - 1 both ways: every nonzero is in the leading block).

Counts (`minode.SolverStats`): ``nfe`` counts every call of f forward (the columns of SciPy's
finite-difference Jacobian included) and every evaluation of the backward dynamics (one VJP
each), as minode's adjoint does; ``jacobians`` and ``lu`` are SciPy's ``njev`` and ``nlu`` (a
backward Jacobian costs n VJPs that ``nfe`` does not count). ``solve_ivp`` does not report its
steps, so forward steps are not counted; the backward solve steps SciPy's solver objects
itself (each interval then starts with the last one's step, but LSODA's with the given first
step or its own estimate, and no step is stored) and counts
their accepted steps; SciPy does not report rejected ones.

First order only: the backward solve runs on NumPy arrays outside autograd's trace, so a
second derivative is refused by name.
"""
from dataclasses import dataclass, field

import numpy
import scipy.integrate
import scipy.sparse
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from minode.adjoint import AugmentedState, augmented_dynamics
from minode.dynamics import time_as_array, vector_field
from minode.integrate import SolverError, host_times
from minode.scipy_bridge import SCIPY_CANNOT, check_lsoda_fits, solve_with_scipy_densely
from minode.stats import SolverStats
from minode.tracing import vjp_per_argument

__all__ = ["DIFFERENTIABLE_METHODS", "ScipyAdjointProblem", "odeint_scipy_adjoint",
           "adjoint_rates", "adjoint_jacobian"]

DIFFERENTIABLE_METHODS = ("Radau", "BDF", "LSODA")
_SOLVERS = {"Radau": scipy.integrate.Radau, "BDF": scipy.integrate.BDF,
            "LSODA": scipy.integrate.LSODA}


class ForwardSolution:
    """The forward solve's dense output, kept by `odeint_scipy_adjoint` for its VJP."""

    def __init__(self):
        self.interpolant = None


@dataclass(frozen=True)
class ScipyAdjointProblem:
    """What `odeint_scipy_adjoint` does not differentiate: ``func``, the ``unflatten`` of the
    flat parameter vector theta, the `minode.solve.ScipyOptions` of the forward and backward
    solves, the `SolverStats` to count into, and the forward solution (filled by the forward
    solve; one problem per solve)."""

    func: object
    unflatten: object
    forward: object
    backward: object
    stats: SolverStats
    solution: ForwardSolution = field(default_factory=ForwardSolution)


@primitive
def odeint_scipy_adjoint(y0, t, theta, problem):
    """y at every time of ``t`` by ``solve_ivp``, shape (len(t),) + y0.shape; its VJP is the
    backward SciPy solve (see the module docstring)."""
    rhs = vector_field(problem.func, problem.unflatten(theta), SCIPY_CANNOT)
    ys, problem.solution.interpolant = solve_with_scipy_densely(
        rhs, y0, host_times(t), problem.forward, problem.stats.forward)
    return ys


def _scipy_adjoint_vjp(argnums, ys, args, kwargs):
    y0, t, theta, problem = args

    def vjp(grad_ys):
        if any(isbox(x) for x in (ys, y0, t, theta, grad_ys)):
            raise ValueError(f"method 'scipy:{problem.forward.method}' is differentiable once "
                             f"only: its adjoint's backward solve runs in SciPy, outside "
                             f"autograd's trace, so it has no second derivative. For "
                             f"derivatives of higher order use a minode tableau such as "
                             f"'dopri5' (grad='adjoint' or grad='backprop')")
        grads = _backward_solve(problem, ys, t, theta, grad_ys, want_time_grads=1 in argnums)
        return tuple(grads[argnum] for argnum in argnums)
    return vjp


defvjp_argnums(odeint_scipy_adjoint, _scipy_adjoint_vjp)


def _backward_solve(problem, ys, t, theta, grad_ys, want_time_grads):
    """The adjoint equations over every interval [t_{i-1}, t_i], from the last output time to
    t_0, in float64 (SciPy's precision); the gradients w.r.t. y0, t and theta in their dtypes."""
    ys64, grads64 = ys.astype(numpy.float64), grad_ys.astype(numpy.float64)
    times = host_times(t)
    layout = AugmentedState(ys.shape[1:], int(theta.shape[0]), want_time_grads)
    counts, options = problem.stats.backward, problem.backward
    size = layout.n + layout.n_params + int(want_time_grads)
    rates = adjoint_rates(problem, layout, theta, counts)
    jac = adjoint_jacobian(problem, layout.state_shape, theta, size,
                           _matrix_format(options.method, size, layout.n))
    f = vector_field(problem.func, problem.unflatten(theta))
    adjoints = numpy.zeros(size)
    time_grads, step = [], options.first_step
    for i in range(len(times) - 1, 0, -1):
        adjoints[:layout.n] += grads64[i].ravel()  # the jump: the loss looks at z(t_i)
        if want_time_grads:
            counts.nfe += 1
            time_grads.append(numpy.sum(grads64[i] * f(ys64[i], times[i])))
            adjoints[-1] -= time_grads[-1]
        adjoints, step = _solve_interval(rates, jac, layout.n, adjoints, times[i], times[i - 1],
                                         step, options, counts)
    a, a_theta, a_t = layout.adjoints(numpy.concatenate([ys64[0].ravel(), adjoints]))
    grad_t = numpy.array([a_t] + time_grads[::-1], dtype=t.dtype) if want_time_grads else None
    return (a + grads64[0]).astype(ys.dtype), grad_t, a_theta.astype(theta.dtype)


def adjoint_rates(problem, layout, theta, counts):
    """``rates(t, adjoints)``: d/dt [a, a_theta, a_t] with z(t) from the forward solution
    (``problem.solution``), by `augmented_dynamics` on [z(t), a, a_theta, a_t] (whose z part
    is dropped); ``counts.nfe`` counts the calls."""
    dynamics = augmented_dynamics(problem, layout)
    interpolant = problem.solution.interpolant

    def rates(t, adjoints):
        counts.nfe += 1
        state = numpy.concatenate([interpolant(t), adjoints])
        return dynamics(state, time_as_array(t, state.dtype), theta)[layout.n:]
    return rates


def adjoint_jacobian(problem, state_shape, theta, size, matrix_format="dense"):
    """``jac(t, adjoints)``: the Jacobian of the backward dynamics w.r.t. the ``size`` entries
    of [a, a_theta, a_t], as SciPy calls it: -J^T in the leading n x n block, J = df/dz at the
    forward solution z(t), zeros elsewhere (the module docstring says why the quadratures' rows
    are left zero).

    ``matrix_format``: "dense", "sparse" (CSC) or "banded" (LSODA's packed form with bandwidth
    n - 1 below and above: entry (i, j) at row n - 1 + i - j, column j).
    """
    params = problem.unflatten(theta)
    interpolant = problem.solution.interpolant
    n = int(numpy.prod(state_shape, dtype=int))

    def jac(t, adjoints):
        z = interpolant(t).reshape(state_shape)
        time = time_as_array(t, z.dtype)
        vjp, _ = vjp_per_argument(lambda z: problem.func(z, time, params), (z,))
        jacobian, unit = numpy.empty((n, n)), numpy.zeros(n)
        for k in range(n):  # row k of J is e_k^T J
            unit[k] = 1.0
            jacobian[k] = numpy.ravel(vjp(unit.reshape(state_shape))[0])
            unit[k] = 0.0
        return _as_format(-jacobian.T, size, matrix_format)
    return jac


def _matrix_format(method, size, n):
    """How SciPy takes the Jacobian: "banded" for LSODA; for Radau and BDF "sparse" when the
    quadratures (size - n entries) outnumber the n entries of a, else "dense"."""
    if method == "LSODA":
        return "banded"
    return "sparse" if size - n > n else "dense"


def _as_format(block, size, matrix_format):
    """The size x size matrix with ``block`` leading and zeros elsewhere, in ``matrix_format``."""
    m = block.shape[0]
    if matrix_format == "banded":
        rows, cols = numpy.indices(block.shape)
        packed = numpy.zeros((max(2 * m - 1, 1), size))
        packed[m - 1 + rows - cols, cols] = block
        return packed
    if matrix_format == "sparse":
        rows, cols = numpy.nonzero(block)
        return scipy.sparse.csc_matrix((block[rows, cols], (rows, cols)), shape=(size, size))
    matrix = numpy.zeros((size, size))
    matrix[:m, :m] = block
    return matrix


def _solve_interval(rates, jac, n, adjoints, t_start, t_end, first_step, options, counts):
    """The adjoints at ``t_end`` from ``adjoints`` at ``t_start``, stepped by SciPy's solver
    object (a of size ``n`` first); returns them with the step to start the next interval
    with."""
    band = {}
    if options.method == "LSODA":
        band = {"lband": max(n - 1, 0), "uband": max(n - 1, 0)}
        check_lsoda_fits(adjoints.size, band["lband"],
                         "the adjoint's backward state [a, a_theta, a_t]")
    solver = _SOLVERS[options.method](
        rates, t_start, adjoints, t_end, rtol=options.rtol, atol=options.atol,
        first_step=None if first_step is None else min(first_step, abs(t_end - t_start)),
        jac=jac, **band)
    recent_steps = [0.0, 0.0]
    while solver.status == "running":
        message = solver.step()
        if solver.status == "failed":
            raise SolverError(f"the adjoint's backward solve (grad='adjoint', method "
                              f"'scipy:{options.method}') failed between t={t_start:.6g} and "
                              f"t={t_end:.6g} at t={solver.t:.6g}: {message}. Its options are "
                              f"adjoint_rtol and adjoint_atol")
        counts.steps += 1
        recent_steps = [recent_steps[1], float(solver.step_size)]
    counts.jacobians += int(solver.njev)
    counts.factorisations += int(solver.nlu)
    if options.method == "LSODA":
        # LSODA starts every solve in its non-stiff (Adams) mode, whose functional iteration
        # fails on a step that stiff mode took (istate -5, "Unexpected istate in LSODA"):
        # each interval starts from the given first step or LSODA's own estimate
        return solver.y, options.first_step
    # the last step is usually cut short to land on t_end; the one before it is not
    return solver.y, max(recent_steps) or None
