"""Continuous normalizing flows (Chen et al. 2018, sec. 4): Theorem 1 in code.

A discrete flow z1 = f(z0) changes a density by the log-determinant of its Jacobian (eq. (6)).
In continuous time the determinant becomes a trace (Theorem 1, the instantaneous change of
variables, eq. (8)): for dz/dt = f(z(t), t),

    d log p(z(t)) / dt = -tr( df/dz(t) ).

So one ODE solve of the augmented state [z, log_det] with dynamics [f, tr(df/dz)] gives the
path z(t) and the change of log-density along it:

    log p(z(t1)) = log p(z(t0)) - int_{t0}^{t1} tr(df/dz) dt = log p(z(t0)) - log_det(t1).

`flow` solves it. The trace comes from one of three places (``trace=``):

* ``"exact"``: D vector-Jacobian products per evaluation (for z of dimension D), one per
  standard basis vector e_i, each read off at entry i: tr(J) = sum_i e_i^T J e_i;
* ``"hutchinson"``: Hutchinson's estimator eps^T J eps with one VJP (Grathwohl et al. 2019,
  FFJORD, eq. (7)-(8)); unbiased because E[eps eps^T] = I, and with one ``noise`` held fixed
  over the solve the estimated log_det is unbiased too;
* ``"closed_form"``: the field returns its own trace, e.g. the planar CNF of
  `minode.planar` (eq. (9)-(10)).

`log_prob` and `sample` use `flow` in the two directions of a generative model whose base
density (a normal, `normal_log_prob`) sits at t[0] and whose data sit at t[-1].
"""
import math

from autograd import make_vjp
from autograd.tracer import getval

from minode import backend, ops
from minode.checks import check_choice, check_positive, check_positive_int
from minode.dynamics import check_derivative
from minode.odeint import odeint

__all__ = ["TRACES", "flow", "exact_trace", "hutchinson_trace", "normal_log_prob",
           "log_prob", "sample"]

TRACES = ("exact", "hutchinson", "closed_form")


def flow(func, z, t, params=None, *, trace="exact", noise=None, **odeint_options):
    """Solve dz/dt = func(z, t, params) together with Theorem 1's log-determinant (eq. (8)).

    Args:
        func: the vector field ``func(z, t, params) -> dz/dt`` of shape (B, D), as for
            `minode.odeint`; with ``trace="closed_form"`` it returns the pair
            ``(dz/dt, tr(df/dz))``, the trace of shape (B,) (such a ``func`` may also carry
            the same field with the two joined, as its attribute ``joined_field_and_trace``:
            see `_augmented_field`).
        z: the states at ``t[0]``, a floating-point array of shape (B, D).
        t: 1-D times, increasing or decreasing, at least 2.
        params: the pytree of parameters passed to ``func``.
        trace: ``"exact"``, ``"hutchinson"`` or ``"closed_form"`` (see the module docstring).
            ``"exact"`` batches the D VJPs over the B rows, which is right only when row b of
            dz/dt depends on row b of z alone (a field that mixes the samples of a batch, e.g.
            through a batch mean, gets a wrong trace).
        noise: with ``trace="hutchinson"``, the probe vectors eps of shape (B, D), one per row,
            held fixed over the solve: Rademacher (entries +-1) or standard normal draws.
        **odeint_options: passed to `minode.odeint` (method, rtol, atol, grad, stats, ...).

    Returns:
        ``(zs, log_det)``: ``zs`` of shape (len(t), B, D) with ``zs[0] == z``, and ``log_det``
        of shape (len(t), B) with log_det[i] = int_{t[0]}^{t[i]} tr(df/dz) dt, so that
        log p(zs[i]) = log p(zs[0]) - log_det[i]. Both are differentiable w.r.t. ``z``, ``t``
        and ``params`` with ``grad="adjoint"`` (default) and ``grad="backprop"``.

    Cost of the gradient: the augmented field [f, tr(df/dz)] already contains derivatives of
    f (the VJPs of the exact or Hutchinson trace), so the adjoint's VJP of it (Algorithm 1)
    differentiates f twice: per backward evaluation about twice the work of a forward one, and
    ``"exact"`` pays its D VJPs again. A closed-form trace is differentiated like any field.
    """
    z = _check_batch(z)
    check_choice("trace", trace, TRACES)
    dim = z.shape[1]
    augmented_field = _augmented_field(func, trace, _check_noise(noise, trace, z), dim)

    log_det_start = backend.xp.zeros((z.shape[0], 1), dtype=getval(z).dtype)
    states = odeint(augmented_field, ops.concatenate([z, log_det_start], axis=1), t, params,
                    **odeint_options)
    return (ops.getitem(states, (Ellipsis, slice(0, dim))),
            ops.getitem(states, (Ellipsis, dim)))


_JOINED = "joined_field_and_trace"


def _augmented_field(func, trace, noise, dim):
    """``(state, t, params) -> d/dt [z, log_det] = [f, tr(df/dz)]`` (B, D + 1), eq. (8).

    A closed-form ``func`` may carry, as its attribute ``joined_field_and_trace``, the same
    field returning [dz/dt, tr(df/dz)] as one (B, D + 1) array (`minode.planar` does): used
    directly, it saves splitting the pair and joining it again (four traced primitives) at
    every evaluation. An attribute that ``functools.wraps`` copied from the function that
    ``func`` wraps is not ``func``'s own field and is ignored: ``func`` may change that field.
    """
    joined = getattr(func, _JOINED, None) if trace == "closed_form" else None
    if joined is not None and getattr(getattr(func, "__wrapped__", None), _JOINED, None) is joined:
        joined = None
    if joined is not None:
        return lambda state, t, params: joined(
            ops.getitem(state, (slice(None), slice(0, dim))), t, params)
    field_and_trace = _field_and_trace(func, trace, noise)

    def augmented_field(state, t, params):
        dz_dt, trace_value = field_and_trace(ops.getitem(state, (slice(None), slice(0, dim))),
                                             t, params)
        return ops.concatenate([dz_dt, ops.reshape(trace_value, (-1, 1))], axis=1)
    return augmented_field


def _field_and_trace(func, trace, noise):
    """``(z, t, params) -> (dz/dt, trace)`` for the chosen way of computing the trace."""
    if trace == "exact":
        return lambda z, t, params: exact_trace(func, z, t, params)
    if trace == "hutchinson":
        return lambda z, t, params: hutchinson_trace(func, z, t, params, noise)
    return _returning_field_and_trace(func)


def exact_trace(func, z, t, params):
    """``(dz/dt, tr(df/dz))`` per row of ``z`` (B, D), with D vector-Jacobian products.

    The VJP with the basis vector e_i in every row gives row i of each sample's Jacobian;
    its entry i is the diagonal element J_ii. Rows of ``z`` must not interact (see `flow`).
    """
    vjp, dz_dt = make_vjp(lambda z: func(z, t, params))(z)
    check_derivative(dz_dt, z, t, func)
    trace = 0.0
    for i in range(z.shape[1]):
        basis = backend.xp.zeros_like(getval(dz_dt))
        basis[:, i] = 1.0
        trace = ops.add(trace, ops.getitem(vjp(basis), (slice(None), i)))
    return dz_dt, trace


def hutchinson_trace(func, z, t, params, noise):
    """``(dz/dt, eps^T (df/dz) eps)`` per row, with ``noise`` eps of shape (B, D) and one VJP.

    Unbiased for tr(df/dz) when E[eps eps^T] = I (Hutchinson 1989; FFJORD eq. (7)). Its variance
    for the symmetric part S of the Jacobian is 2 |S|_F^2 with Gaussian eps, and
    2 (|S|_F^2 - sum_i S_ii^2) with Rademacher eps (in 2-D: (J_12 + J_21)^2).
    """
    vjp, dz_dt = make_vjp(lambda z: func(z, t, params))(z)
    check_derivative(dz_dt, z, t, func)
    return dz_dt, ops.sum(ops.multiply(vjp(noise), noise), axis=1)


def normal_log_prob(z, std=1.0):
    """log N(z; 0, std^2 I) per row of ``z`` (B, D): the base density of a flow."""
    check_positive("std", std)
    z = _check_batch(z)
    return ops.sum(ops.gaussian_log_likelihood(z, 0.0, 2.0 * math.log(std)), axis=1)


def log_prob(func, x, t, params=None, *, base_std=1.0, **flow_options):
    """log p(x) per row of ``x`` (B, D) under the flow from N(0, base_std^2 I) at ``t[0]``.

    ``t`` runs from the base (t[0]) to the data (t[-1]). The solve goes the density direction,
    data -> base, through ``t`` reversed: with z = z(t[0]),
    log p(x) = log N(z) + int_{t[0]}^{t[-1]} tr(df/dz) dt = log N(z) - log_det(t[0]).
    ``flow_options`` go to `flow` (trace, noise, and the odeint options).
    """
    zs, log_det = flow(func, _check_batch(x, "x"), _reversed(t), params, **flow_options)
    return ops.add(normal_log_prob(ops.getitem(zs, -1), base_std), ops.getitem(log_det, -1))


def sample(func, n, t, params=None, *, rng, base_std=1.0, dim=2, **flow_options):
    """``(xs, log_q)``: ``n`` draws from the base N(0, base_std^2 I) (D = ``dim``) carried from
    t[0] to every time of ``t``, and their log-densities.

    ``xs`` has shape (len(t), n, D); ``log_q[i] = log N(xs[0]) - log_det[i]`` (Theorem 1) is
    the log-density of xs[i] under the flow pushed to t[i]. ``rng`` is a
    ``numpy.random.Generator``; ``flow_options`` go to `flow`.
    """
    check_positive_int("n", n)
    check_positive_int("dim", dim)
    z = backend.asarray(base_std * rng.standard_normal((n, dim)))
    xs, log_det = flow(func, z, t, params, **flow_options)
    return xs, ops.subtract(normal_log_prob(z, base_std), log_det)


def _check_batch(z, name="z"):
    value = getval(z)
    if not hasattr(value, "ndim") or value.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (batch, dim), got "
                         f"{getattr(value, 'shape', type(value).__name__)}")
    if value.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {value.dtype}")
    return z


def _returning_field_and_trace(func):
    """``func``, checked at every call to return ``(dz/dt, tr(df/dz))`` of shapes (B, D) and
    (B,) for z of shape (B, D): what ``trace="closed_form"`` unpacks."""
    def field_and_trace(z, t, params):
        result = func(z, t, params)
        shape = getval(z).shape
        shapes = [_shape(part) for part in result] if isinstance(result, (tuple, list)) else None
        if shapes != [shape, shape[:1]]:
            got = (f"one value of shape {_shape(result)}" if shapes is None
                   else f"a {type(result).__name__} of shapes {shapes}")
            raise ValueError(f"trace='closed_form' needs func(z, t, params) to return the pair "
                             f"(dz/dt, tr(df/dz)) of shapes {shape} and {shape[:1]}, got {got}; "
                             f"for a func returning dz/dt alone use trace='exact' or "
                             f"'hutchinson'")
        return result
    return field_and_trace


def _shape(value):
    return getattr(getval(value), "shape", None)


def _check_noise(noise, trace, z):
    shape = getval(z).shape
    if trace != "hutchinson":
        if noise is not None:
            raise ValueError(f"noise is used only with trace='hutchinson', got trace={trace!r}")
        return None
    if noise is None or getattr(noise, "shape", None) != shape:
        raise ValueError(f"noise must be an array of z's shape {shape} for "
                         f"trace='hutchinson' (Rademacher or Gaussian probes), got "
                         f"{getattr(noise, 'shape', noise)!r}")
    return noise


def _reversed(t):
    """The times ``t`` (an array, traced or not, or a list) in the opposite order."""
    if not hasattr(getval(t), "ndim"):
        t = backend.asarray(t, dtype="float64")
    if getval(t).ndim != 1:
        raise ValueError(f"t must be a 1-D array of at least 2 times, got shape "
                         f"{getval(t).shape}")
    return ops.getitem(t, slice(None, None, -1))
