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
"""
from dataclasses import dataclass

from autograd import make_vjp
from autograd.extend import defvjp_argnums, primitive

from minode import backend
from minode.dynamics import time_as_array, vector_field
from minode.integrate import SolveOptions, host_times, integrate
from minode.ops import getitem, reshape
from minode.stats import SolverStats
from minode.stepping import rms_error_ratio


@dataclass(frozen=True)
class AdjointProblem:
    """Everything about a solve that is not differentiated: passed through autograd untouched.

    ``unflatten`` turns the flat parameter vector theta back into the pytree ``func`` expects.
    ``seminorm``: the backward error control ignores a_theta and a_t (Kidger, Chen & Lyons
    2021, "Hey, that's not an ODE"), which need no accuracy of their own: they are integrals
    of quantities that z and a already control.
    """

    func: object
    unflatten: object
    forward: SolveOptions
    backward: SolveOptions
    seminorm: bool
    stats: SolverStats


@primitive
def odeint_adjoint(y0, t, theta, problem):
    """Forward solve at every time in ``t``; the VJP below runs Algorithm 1.

    ``theta`` is the flat parameter vector. Returns the stacked outputs, shape
    (len(t),) + y0.shape, with ``ys[0] == y0``.
    """
    rhs = vector_field(problem.func, problem.unflatten(theta))
    times = host_times(t)
    outputs, _ = integrate(rhs, y0, times, problem.forward, problem.stats.forward)
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


class _AugmentedState:
    """Packing of [z, a, a_theta, a_t] into one flat vector, the state of the backward ODE."""

    def __init__(self, state_shape, n_params, with_time):
        self.state_shape = state_shape
        self.n = 1
        for size in state_shape:
            self.n *= size
        self.n_params = n_params
        self.with_time = with_time

    def pack(self, z, a, a_theta, a_t):
        xp = backend.xp
        parts = [z.ravel(), a.ravel(), a_theta]
        if self.with_time:
            parts.append(xp.reshape(a_t, (1,)).astype(z.dtype))
        return xp.concatenate(parts)

    def unpack(self, state):
        n, p = self.n, self.n_params
        z = state[:n].reshape(self.state_shape)
        a = state[n:2 * n].reshape(self.state_shape)
        a_theta = state[2 * n:2 * n + p]
        a_t = state[2 * n + p] if self.with_time else None
        return z, a, a_theta, a_t

    def seminorm_ratio(self, error, y0, y1, rtol, atol):
        """The error ratio over z and a only (the "seminorm")."""
        n2 = 2 * self.n
        # The RMS of the error with its a_theta and a_t parts set to zero: the mean still divides
        # by every entry, so the seminorm never exceeds the full norm (an RMS over z and a alone
        # could, and then took more backward steps than the full norm).
        return rms_error_ratio(error[:n2], y0[:n2], y1[:n2], rtol, atol) * (
            n2 / error.shape[0]) ** 0.5


def _augmented_dynamics(problem, theta, layout):
    """d/dt [z, a, a_theta, a_t] = [f, -a^T df/dz, -a^T df/dtheta, -a^T df/dt] (Alg. 1).

    f is differentiated with respect to ONE flat vector [z, theta, t] (t only when its gradient
    is wanted), so the single VJP returns [a^T df/dz, a^T df/dtheta, a^T df/dt] already laid out
    as the a, a_theta and a_t parts of the augmented state.
    """
    xp = backend.xp
    n, p = layout.n, layout.n_params

    def func_of_flat(inputs, t):
        z = reshape(getitem(inputs, slice(0, n)), layout.state_shape)
        t_array = getitem(inputs, n + p) if layout.with_time else t
        return problem.func(z, t_array, problem.unflatten(getitem(inputs, slice(n, n + p))))

    def rhs(state, t):
        z, a, _, _ = layout.unpack(state)
        t_array = time_as_array(t, z.dtype)
        inputs = [z.ravel(), theta] + ([xp.reshape(t_array, (1,))] if layout.with_time else [])
        f_vjp, f_value = make_vjp(func_of_flat)(xp.concatenate(inputs), t_array)
        return xp.concatenate([f_value.ravel(), -f_vjp(a)])
    return rhs


def _backward_solve(problem, ys, t, theta, grad_ys, want_time_grads):
    """Algorithm 1 over every interval [t_{i-1}, t_i], from the last output time to t_0."""
    xp = backend.xp
    params = problem.unflatten(theta)
    layout = _AugmentedState(ys.shape[1:], int(theta.shape[0]), want_time_grads)
    aug_rhs = _augmented_dynamics(problem, theta, layout)
    error_ratio = layout.seminorm_ratio if problem.seminorm else rms_error_ratio
    f = vector_field(problem.func, params)
    times = host_times(t)
    n_times = len(times)

    grad_t = xp.zeros(n_times, dtype=ys.dtype) if want_time_grads else None
    a = xp.zeros_like(ys[0])
    a_theta = xp.zeros(layout.n_params, dtype=ys.dtype)
    a_t = xp.zeros((), dtype=ys.dtype)
    step = None
    for i in range(n_times - 1, 0, -1):
        a = a + grad_ys[i]  # the jump: the loss looks at z(t_i) directly
        if want_time_grads:
            problem.stats.backward.nfe += 1
            grad_t[i] = xp.vdot(grad_ys[i].ravel(), f(ys[i], times[i]).ravel())
            a_t = a_t - grad_t[i]
        state = layout.pack(ys[i], a, a_theta, a_t)  # z reset to the stored forward value
        outputs, step = integrate(aug_rhs, state, [times[i], times[i - 1]], problem.backward,
                                  problem.stats.backward, first_step=step,
                                  error_ratio=error_ratio)
        _, a, a_theta, a_t = layout.unpack(outputs[-1])
    if want_time_grads:
        grad_t[0] = a_t
        grad_t = grad_t.astype(t.dtype)  # a float32 state still has float64 times
    return a + grad_ys[0], grad_t, a_theta.astype(theta.dtype)
