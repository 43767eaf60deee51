"""The adjoint method (Chen et al. 2018, sec. 2 and Algorithm 1): gradients by a backward solve.

The forward solve keeps only the outputs z(t_i), so memory does not grow with the number of
steps. For a loss L of the outputs, the adjoint a(t) = dL/dz(t) obeys (eq. (4))

    da/dt = -a(t)^T df(z(t), t, theta)/dz,

the gradient with respect to the parameters is eq. (5), and the one with respect to time comes
from the same construction with t as a state (Appendix B.2, "Gradients w.r.t. theta and t"):

    dL/dtheta = -int_{t_N}^{t_0} a(t)^T df/dtheta dt,   da_t/dt = -a(t)^T df/dt.

Algorithm 1 solves these together backwards in time as one ODE on the augmented state
[z, a, a_theta, a_t], whose dynamics [f, -a^T df/dz, -a^T df/dtheta, -a^T df/dt] come from ONE
vector-Jacobian product of f per evaluation. z is solved backwards too (it is not stored).

With several output times (the paper's Figure 2; Algorithm 2 in Appendix C), the solve runs
interval by interval: at each t_i, z is reset to the stored forward value z(t_i) and the
direct gradient dL/dz(t_i) is added to a. Signs of the time gradients (what `odeint` returns):

    dL/dt_i = dL/dz(t_i) . f(z(t_i), t_i)            for i > 0 (moving t_i moves its output),
    dL/dt_0 = a_t(t_0) = -a(t_0) . f(z(t_0), t_0)    (moving t_0 shifts the whole trajectory),

where a_t starts at 0, jumps by -dL/dt_i at each t_i, and is integrated with da_t/dt above.

Stiff problems: with an implicit method (``method="rodas4"``) the backward solve is implicit
too; a_theta and a_t are quadratures (nothing reads them), so only the (z, a) block of the
augmented Jacobian is factorised and they follow by Jacobian-vector products. z itself is
solved backwards, which is unstable where f has fast decaying modes (they grow backwards):
each interval's recomputed z is compared with the stored forward z(t_i), and where it drifted
the interval is split at checkpoints whose z comes from forward solves (`_solve_back`).

Derivatives of every order (the paper's Appendix D: its autograd implementation "supports all
higher-order derivatives"): each backward interval is itself solved by `odeint_adjoint`, with
the augmented dynamics as its vector field, and everything around it (the resets, the jumps,
the time gradients) is written with minode's primitives. So autograd can trace the backward
pass, and the derivative of the adjoint is again an adjoint solve, of the augmented system.
"""
import math
from dataclasses import dataclass, replace

from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval

from minode import backend, ops
from minode.dynamics import vector_field
from minode.integrate import SolveOptions, SolverError, host_times, integrate
from minode.stats import SolverStats
from minode.stepping import rms_error_ratio
from minode.tracing import vjp_per_argument


_ADJOINT_CANNOT = ("The adjoint (grad='adjoint') solves outside autograd's trace and cannot "
                   "differentiate it (grad='backprop' traces every step and can)")


class StepSizeCarry:
    """The step size one solve hands on to the next one.

    The backward pass solves its intervals [t_{i-1}, t_i] one after another; each starts from
    the step the previous one would have tried next (``step``), instead of choosing a first
    step from scratch at every output time. It is the only thing handed from one solve to the
    next: the engine reads a first step from ``SolveOptions.first_step`` alone, and
    `odeint_adjoint` puts ``step`` there.
    """

    def __init__(self):
        self.step = None


@dataclass(frozen=True)
class AdjointProblem:
    """Everything about a solve that is not differentiated: passed through autograd untouched.

    ``unflatten`` turns the flat parameter vector theta back into the pytree ``func`` expects.
    ``seminorm``: the backward error control measures z and a only (`seminorm_error_ratio`).
    ``error_ratio`` is the error norm of the forward solve; ``step_carry``, when given, holds
    the forward solve's first step and receives its next one. ``quadratures``: the last that
    many entries of the flat state are quadratures that ``func`` never reads (a_theta and a_t
    of an augmented state), which an implicit method solves without factorising their part of
    the Jacobian (`minode.jacobian`).
    """

    func: object
    unflatten: object
    forward: SolveOptions
    backward: SolveOptions
    seminorm: bool
    stats: SolverStats
    error_ratio: object = rms_error_ratio
    step_carry: StepSizeCarry | None = None
    quadratures: int = 0


@primitive
def odeint_adjoint(y0, t, theta, problem):
    """Forward solve at every time in ``t``; the VJP below runs Algorithm 1.

    ``theta`` is the flat parameter vector. Returns the stacked outputs, shape
    (len(t),) + y0.shape, with ``ys[0] == y0``.
    """
    rhs = vector_field(problem.func, problem.unflatten(theta), _ADJOINT_CANNOT)
    carry, options = problem.step_carry, problem.forward
    if carry is not None and carry.step is not None:
        options = replace(options, first_step=carry.step)
    outputs, next_step = integrate(rhs, y0, host_times(t), options, problem.stats.forward,
                                   error_ratio=problem.error_ratio,
                                   quadratures=problem.quadratures)
    if carry is not None:
        carry.step = next_step
    return backend.xp.stack([y0] + outputs)


def _adjoint_vjp(argnums, ys, args, kwargs):
    y0, t, theta, problem = args
    want_time_grads = 1 in argnums

    def vjp(grad_ys):
        grad_y0, grad_t, grad_theta = _backward_solve(problem, ys, t, theta, grad_ys,
                                                      want_time_grads)
        return tuple((grad_y0, grad_t, grad_theta)[argnum] for argnum in argnums)
    return vjp


defvjp_argnums(odeint_adjoint, _adjoint_vjp)


def seminorm_error_ratio(n_controlled):
    """The error ratio over the first ``n_controlled`` entries of the state only.

    For the augmented state [z, a, a_theta, a_t] with n_controlled = size(z) + size(a), this is
    the seminorm of Kidger, Chen & Lyons 2021 ("Hey, that's not an ODE", sec. 3): a_theta and
    a_t need no accuracy of their own, as they are integrals of quantities that z and a
    already control, and leaving them out of the error norm saves backward steps.
    """
    def error_ratio(error, y0, y1, rtol, atol):
        n = n_controlled
        return rms_error_ratio(error[:n], y0[:n], y1[:n], rtol, atol)
    return error_ratio


class AugmentedState:
    """The layout of [z, a, a_theta, a_t] in one flat vector, the state of the backward ODE.

    Slicing and the ``reshape``/``ravel`` methods run as plain array operations on the
    first-order backward pass (its innermost loop) and route to differentiable primitives when
    autograd traces the state (for higher derivatives), as the stepping engine's operators do.
    """

    def __init__(self, state_shape, n_params, with_time):
        self.state_shape = state_shape
        self.n = 1
        for size in state_shape:
            self.n *= size
        self.n_params = n_params
        self.with_time = with_time

    def pack(self, z, a, a_theta_parts, a_t=None):
        """The flat vector; ``a_theta_parts`` are arrays whose entries, in order, make a_theta
        (one per parameter leaf, or a_theta itself); ``a_t`` (a 0-d array) only when time
        gradients are wanted."""
        # One dtype, z's: a float32 state keeps a float32 backward solve, whatever the
        # dtype of theta (the vjp w.r.t. a float64 theta is float64) or of the times.
        parts = [z.ravel(), ops.as_dtype(a, z.dtype).ravel()]
        parts += [ops.as_dtype(part, z.dtype).ravel() for part in a_theta_parts]
        if self.with_time:
            parts.append(ops.as_dtype(a_t, z.dtype).reshape(1))
        return ops.concatenate(parts)

    def z_and_a(self, state):
        """z and a, in the shape of the ODE's state."""
        n = self.n
        return state[:n].reshape(self.state_shape), state[n:2 * n].reshape(self.state_shape)

    def adjoints(self, state):
        """a, a_theta and a_t (None without time gradients)."""
        n, p = self.n, self.n_params
        a_t = state[2 * n + p] if self.with_time else None
        return state[n:2 * n].reshape(self.state_shape), state[2 * n:2 * n + p], a_t


def augmented_dynamics(problem, layout):
    """d/dt [z, a, a_theta, a_t] = [f, -a^T df/dz, -a^T df/dtheta, -a^T df/dt] (Alg. 1).

    One vector-Jacobian product of f with respect to z, every parameter array and t (t only
    when its gradient is wanted), applied to -a, gives the last three pieces by name. Each of
    them is its own trace root (`minode.tracing.vjp_per_argument`), and theta is cut into the
    parameter arrays before tracing, so an evaluation traces f's own operations and nothing
    else. The result is a vector field ``(state, t, theta) -> d state/dt`` that
    `odeint_adjoint` can solve and differentiate. Of ``problem`` it reads ``func`` and
    ``unflatten`` only (`minode.scipy_adjoint` passes a problem of its own).
    """
    unflatten = problem.unflatten

    def dynamics(state, t, theta):
        z, a = layout.z_and_a(state)
        leaves = unflatten.split(theta)
        if layout.with_time:
            vjp, dz_dt = vjp_per_argument(
                lambda z, t, *leaves: problem.func(z, t, unflatten.rebuild(leaves)),
                (z, t, *leaves))
            a_z, a_t_rate, *a_leaves = vjp(-a)
            return layout.pack(dz_dt, a_z, a_leaves, a_t_rate)
        vjp, dz_dt = vjp_per_argument(
            lambda z, *leaves: problem.func(z, t, unflatten.rebuild(leaves)), (z, *leaves))
        a_z, *a_leaves = vjp(-a)
        return layout.pack(dz_dt, a_z, a_leaves)
    return dynamics


def _augmented_problem(problem, layout):
    """The backward ODE of ``problem`` as a problem of its own, solved by `odeint_adjoint`.

    Its forward solve is ``problem``'s backward solve; its own backward solve (for second
    derivatives) uses the same options. Its parameters are ``problem``'s flat theta.
    """
    error_ratio = seminorm_error_ratio(2 * layout.n) if problem.seminorm else rms_error_ratio
    counts = problem.stats.backward  # every adjoint solve, at any order, counts as backward
    # a state of size 0 leaves only quadratures, of rate 0: then none are declared, as an
    # implicit method needs a part to factorise
    quadratures = layout.n_params + int(layout.with_time) if layout.n else 0
    return AdjointProblem(augmented_dynamics(problem, layout), _WHOLE_VECTOR, problem.backward,
                          problem.backward, problem.seminorm, SolverStats(counts, counts),
                          error_ratio, StepSizeCarry(), quadratures=quadratures)


class _WholeVector:
    """The `minode.tree.Unflatten` of a parameter vector that is used whole: the augmented
    problem's theta, which its dynamics take as the flat vector it is."""

    @staticmethod
    def __call__(theta):
        return theta

    @staticmethod
    def split(theta):
        return [theta]

    @staticmethod
    def rebuild(leaves):
        return leaves[0]


_WHOLE_VECTOR = _WholeVector()


def _backward_solve(problem, ys, t, theta, grad_ys, want_time_grads):
    """Algorithm 1 over every interval [t_{i-1}, t_i], from the last output time to t_0."""
    xp = backend.xp
    layout = AugmentedState(ys.shape[1:], int(theta.shape[0]), want_time_grads)
    augmented = _augmented_problem(problem, layout)
    f = vector_field(problem.func, problem.unflatten(theta))
    a = xp.zeros(ys.shape[1:], dtype=ys.dtype)
    a_theta = xp.zeros(layout.n_params, dtype=ys.dtype)
    a_t = xp.zeros((), dtype=ys.dtype)
    time_grads = []
    for i in range(ys.shape[0] - 1, 0, -1):
        z_i, t_i, grad_z_i = ops.getitem(ys, i), ops.getitem(t, i), ops.getitem(grad_ys, i)
        a = a + grad_z_i  # the jump: the loss looks at z(t_i) directly
        if want_time_grads:
            problem.stats.backward.nfe += 1
            time_grads.append(ops.sum(grad_z_i * f(z_i, t_i)))
            a_t = a_t - time_grads[-1]
        state = layout.pack(z_i, a, [a_theta], a_t)  # z reset to the stored forward value
        end = _solve_back(problem, augmented, layout, theta, state, t_i, ops.getitem(t, i - 1),
                          ops.getitem(ys, i - 1))
        a, a_theta, a_t = layout.adjoints(end)
    grad_t = None
    if want_time_grads:  # a float32 state still has float64 times
        grad_t = ops.as_dtype(ops.stack([a_t] + time_grads[::-1]), t.dtype)
    return a + ops.getitem(grad_ys, 0), grad_t, ops.as_dtype(a_theta, theta.dtype)


def _solve_back(problem, augmented, layout, theta, state, t_from, t_to, z_to, halvings=0):
    """The augmented state at ``t_to``, solved back from ``state`` at ``t_from``; ``z_to`` is
    z(t_to) from a forward solve.

    Algorithm 1 recomputes z(t) backwards instead of storing it. For a stiff or otherwise
    backward-unstable f, modes that decay forwards grow backwards (like e^{|lambda| t}), so the
    recomputed z, and with it a and the gradient, can be wrong by orders of magnitude with
    every step accepted (on y' = A y with eigenvalue -1000: right to 5e-7 over an interval of
    0.01, 0.6% off over 0.02, off by 1e6 over 0.04). So the recomputed z(t_to) is compared
    with ``z_to`` in the error norm of the looser of the forward and backward tolerances; where
    it drifted by more than `_LOST_Z` times that tolerance, the interval is halved at a
    checkpoint: z there comes from a forward solve from ``z_to``, and each half is solved back
    with z reset to its forward value, as at an output time (the checkpointed adjoint: more
    solves, never a lost z). Not checked where the forward or the backward method is
    fixed-step: its error is not a tolerance.
    """
    end = _backward_interval(augmented, theta, state, t_from, t_to)
    drift = _drift(layout, end, z_to, problem.forward, problem.backward)
    if drift <= _LOST_Z:
        return end
    if halvings == _MOST_HALVINGS or not math.isfinite(drift):
        raise SolverError(
            f"the adjoint's backward solve (grad='adjoint') lost z between "
            f"t={float(getval(t_from)):.6g} and t={float(getval(t_to)):.6g}: z recomputed "
            f"backwards differs from the forward solution by more than {_LOST_Z:g} times the "
            f"tolerance after {halvings} halvings of the interval (the problem is "
            f"unstable backwards in time); use grad='backprop'")
    t_middle = 0.5 * (t_from + t_to)
    checkpoint = _recomputation(problem)
    z_middle = ops.getitem(odeint_adjoint(z_to, ops.stack([t_to, t_middle]), theta, checkpoint),
                           1)
    middle = _solve_back(problem, augmented, layout, theta, state, t_from, t_middle, z_middle,
                         halvings + 1)
    a, a_theta, a_t = layout.adjoints(middle)
    return _solve_back(problem, augmented, layout, theta, layout.pack(z_middle, a, [a_theta], a_t),
                       t_middle, t_to, z_to, halvings + 1)


def _backward_interval(augmented, theta, state, t_from, t_to):
    """One backward solve of the augmented ODE from t_from to t_to; its state at t_to."""
    try:
        solution = odeint_adjoint(state, ops.stack([t_from, t_to]), theta, augmented)
    except SolverError as error:
        raise SolverError(f"the adjoint's backward solve (grad='adjoint') failed between "
                          f"t={float(getval(t_from)):.6g} and t={float(getval(t_to)):.6g}: "
                          f"{error}. Its options are adjoint_method, adjoint_rtol, "
                          f"adjoint_atol") from error
    return ops.getitem(solution, 1)


def _drift(layout, end, z_stored, forward, backward):
    """How far the recomputed z in ``end`` is from ``z_stored``, in units of the looser of the
    ``forward`` and ``backward`` solves' tolerances (``z_stored`` is only as accurate as the
    forward solve); 0 where either is fixed-step."""
    if not (forward.tableau.adaptive and backward.tableau.adaptive):
        return 0.0
    z_back, z_stored = getval(layout.z_and_a(getval(end))[0]), getval(z_stored)
    return rms_error_ratio(z_back - z_stored, z_stored, z_back,
                           max(forward.rtol, backward.rtol), max(forward.atol, backward.atol))


def _recomputation(problem):
    """``problem`` for the forward solves to checkpoints: counted as backward work."""
    counts = problem.stats.backward
    return replace(problem, stats=SolverStats(counts, counts), step_carry=None)


# Well-posed intervals stay within about 120 times the tolerance on minode's tests and
# tutorials; an unstable one exceeds this by orders of magnitude. Halving at most 12 times
# bounds the work at 2^12 pieces of an output interval (a mode of |lambda| = 1000 over an
# interval of 1 needs about 2^8).
_LOST_Z = 1e3
_MOST_HALVINGS = 12
