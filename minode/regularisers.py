"""Regularised training of Neural ODEs (Finlay et al. 2020, "How to train your neural ODE",
RNODE): the kinetic energy and the Jacobian's Frobenius norm along the flow, as integrals
solved with the state.

For dz/dt = f(z(t), t) RNODE adds to the loss, per sample,

    lambda_K * int_{t0}^{t1} ||f(z(t), t)||^2 dt           (kinetic energy: the
                                                            Benamou-Brenier transport cost)
    lambda_J * int_{t0}^{t1} ||df/dz(z(t), t)||_F^2 dt     (Jacobian Frobenius norm)

and estimates the Frobenius norm by Hutchinson's trick with one probe eps held fixed over the
solve: E[eps eps^T] = I gives E ||eps^T df/dz||^2 = tr(J J^T) = ||J||_F^2, at the cost of one
vector-Jacobian product per evaluation (FFJORD's trace estimator, Grathwohl et al.
2019, eq. (7), applied to J J^T). Both integrals are extra components of the solved state,
so one adaptive solve gives them with z, and the adjoint (Algorithm 1 of Chen et al. 2018)
differentiates them like everything else: RNODE's extra state channels, beside the CNF's
log-determinant.

Like FFJORD's and RNODE's code (``rtol = atol = 1e20`` for the regularisation states), the
integrals are held by default (``error_control=False``) to tolerances so loose that they take
no part in the adaptive step-size control in practice: the solver carries
`UNCONTROLLED_SCALE` times each integral I and divides the result back. Per component the
error norm divides the error by (atol + rtol |value|), so the carried integral is held to an
absolute tolerance of atol / UNCONTROLLED_SCALE (0.1 for odeint's default atol = 1e-9) and
the same rtol, which binds only where |I| > atol / (UNCONTROLLED_SCALE rtol): 1e6 at odeint's
default tolerances, but 1e-9 at rtol = 1e-3, atol = 1e-20, where the integrals are under
relative control again. minode's error norm is one RMS over every component, so the k
carried integrals still count in its denominator: beside D other components per sample, the
error the controller sees is sqrt(D / (D + k)) times the plain solve's, its steps up to
(1 + k / D)^(1/10) longer (dopri5; 5% for a 2-D CNF with two integrals, under 0.1% for an
ODE-Net's C x 7 x 7 feature maps of C >= 8 channels).

`regularised_odeint` does this for any ``func(z, t, params)`` of `minode.odeint` whose state
has a batch axis first; `regularised_flow` for a CNF (`minode.cnf.flow`'s field and trace
choices), the log-determinant of Theorem 1 solved alongside.

Ghosh et al. 2020 (STEER) regularise by the end time instead: `steer_end_time` draws it
uniformly from [T - b, T + b] for each training step.
"""
import math

from autograd import make_vjp
from autograd.tracer import getval

from minode import backend, cnf, ops
from minode.checks import check_choice, check_positive
from minode.dynamics import check_derivative
from minode.odeint import odeint

__all__ = ["REGULARISERS", "UNCONTROLLED_SCALE", "regularised_odeint", "regularised_flow",
           "regulariser_rates", "steer_end_time"]

REGULARISERS = ("kinetic", "jacobian")
# the factor on the integrals the solver carries when they take no part in error control
UNCONTROLLED_SCALE = 1e-8


def regularised_odeint(func, y0, t, params=None, *, regularisers=REGULARISERS, noise=None,
                       error_control=False, **odeint_options):
    """Solve dz/dt = func(z, t, params) together with RNODE's regularisation integrals.

    Args:
        func: the field ``func(z, t, params) -> dz/dt`` of `minode.odeint`; row b of dz/dt
            must depend on row b of z alone (the Jacobian is taken per sample).
        y0: the states at ``t[0]``, a floating-point array of shape (B, ...): batch axis first.
        t: 1-D times, increasing or decreasing, at least 2.
        params: the pytree of parameters passed to ``func``.
        regularisers: a tuple of names from `REGULARISERS`: ``"kinetic"`` for
            int ||f||^2 |dt|, ``"jacobian"`` for int ||df/dz||_F^2 |dt| (Hutchinson).
        noise: with ``"jacobian"``, the probe eps of ``y0``'s shape and dtype, held fixed over
            the solve: Rademacher (entries +-1) or standard normal draws.
        error_control: whether the integrals take part in the solver's step-size control
            (default False, as in RNODE's code; see the module docstring).
        **odeint_options: passed to `minode.odeint` (method, rtol, atol, grad, stats, ...).

    Returns:
        ``(ys, integrals)``: ``ys`` of shape (len(t),) + y0.shape as `odeint` returns it, and
        ``integrals`` a dict ``{name: (len(t), B)}`` with ``integrals[name][i]`` the integral
        from t[0] to t[i] per sample, over |dt|: positive in either direction of ``t``. All
        are differentiable with ``grad="adjoint"`` and ``grad="backprop"``; the adjoint's VJP
        of a field with ``"jacobian"`` differentiates ``func`` twice.
    """
    names = _check_regularisers(regularisers)
    y0 = _check_batch_first(y0, "y0")
    noise = _check_noise(noise, "jacobian" in names, y0, "jacobian")
    direction = _direction(t)

    def rates(z, t, params):
        dz_dt, extra = regulariser_rates(func, z, t, params, names, noise, direction)
        return dz_dt, [], extra

    ys, integrals = _solve_with_integrals(rates, y0, t, params, len(names), error_control,
                                          odeint_options)
    return ys, dict(zip(names, integrals))


def regularised_flow(func, z, t, params=None, *, trace="exact", regularisers=REGULARISERS,
                     noise=None, error_control=False, **odeint_options):
    """`minode.cnf.flow` with RNODE's integrals: [z, log_det, kinetic, jacobian] in one solve.

    ``func``, ``trace`` (``"exact"``, ``"hutchinson"``, ``"closed_form"``) and ``noise`` as
    for `minode.cnf.flow`; the Hutchinson trace and the Jacobian's Frobenius norm share the
    probe ``noise`` and its one VJP (eps^T J eps and ||eps^T J||^2), as in RNODE. With
    ``"closed_form"`` and ``"jacobian"``, ``func`` runs twice per evaluation (once for its
    trace, once inside the VJP). ``regularisers`` and ``error_control`` (which applies to the
    RNODE integrals; the log-determinant is always controlled) as for `regularised_odeint`.

    Returns ``(zs, log_det, integrals)``: ``zs`` (len(t), B, D) and ``log_det`` (len(t), B)
    as `minode.cnf.flow` returns them, ``integrals`` as `regularised_odeint` does.
    """
    names = _check_regularisers(regularisers)
    check_choice("trace", trace, cnf.TRACES)
    z = _check_batch_first(z, "z")
    if getval(z).ndim != 2:
        raise ValueError(f"z must be a 2-D array of shape (batch, dim), got shape "
                         f"{getval(z).shape}")
    needs_probe = trace == "hutchinson" or "jacobian" in names
    noise = _check_noise(noise, needs_probe, z, "trace='hutchinson' or 'jacobian'")
    direction = _direction(t)

    def rates(z, t, params):
        dz_dt, trace_value, probe_vjp = _field_trace_and_probe(func, z, t, params, trace, noise,
                                                              "jacobian" in names)
        return dz_dt, [trace_value], _rates_from(dz_dt, probe_vjp, names, direction)

    zs, integrals = _solve_with_integrals(rates, z, t, params, len(names), error_control,
                                          odeint_options, controlled=1)
    return zs, integrals[0], dict(zip(names, integrals[1:]))


def regulariser_rates(func, z, t, params, regularisers, noise=None, direction=1.0):
    """``(dz/dt, [rate per name])``: the field at one point and the integrands of
    ``regularisers``, each of shape (B,) for ``z`` of shape (B, ...).

    ``"kinetic"``: ||f||^2 per sample; ``"jacobian"``: ||eps^T df/dz||^2 per sample, one VJP
    with the probe ``noise``. ``direction`` (+1 or -1, the sign of dt) makes each integral run
    over |dt|.
    """
    regularisers = _check_regularisers(regularisers)
    noise = _check_noise(noise, "jacobian" in regularisers, z, "jacobian")
    if direction not in (1.0, -1.0):
        raise ValueError(f"direction must be 1.0 or -1.0, the sign of dt, got {direction!r}")
    if "jacobian" in regularisers:
        vjp, dz_dt = make_vjp(lambda z: func(z, t, params))(z)
    else:
        vjp, dz_dt = None, func(z, t, params)
    # the state is solved flattened per sample, where a dz/dt of another shape with as many
    # entries would pass unnoticed
    check_derivative(dz_dt, z, t, func)
    probe_vjp = vjp(noise) if vjp is not None else None
    return dz_dt, _rates_from(dz_dt, probe_vjp, regularisers, direction)


def steer_end_time(end, half_width, rng, start=0.0):
    """STEER's end time (Ghosh et al. 2020): a draw from U[end - half_width,
    end + half_width], for one training step of a solve from ``start`` (default 0) to about
    ``end``; ``rng`` a ``numpy.random.Generator``.

    ``half_width`` must be below ``|end - start|`` so that the interval keeps its direction.
    """
    check_positive("half_width", half_width)
    if not half_width < abs(end - start):
        raise ValueError(f"half_width must be below |end - start| = {abs(end - start)!r} so "
                         f"that the sampled end time stays on the same side of the start "
                         f"{start!r}, got {half_width!r}")
    return float(rng.uniform(end - half_width, end + half_width))


def _rates_from(dz_dt, probe_vjp, regularisers, direction):
    """The integrands of ``regularisers`` per sample, times ``direction``."""
    shape = getval(dz_dt).shape
    per_sample = (shape[0], math.prod(shape[1:]))   # not (B, -1), which an empty batch refuses
    squared_norm = {"kinetic": lambda: dz_dt, "jacobian": lambda: probe_vjp}
    return [direction * ops.sum(ops.square(ops.reshape(squared_norm[name](), per_sample)),
                                axis=1) for name in regularisers]


def _field_trace_and_probe(func, z, t, params, trace, noise, jacobian):
    """``(dz/dt, tr(df/dz), eps^T df/dz or None)`` for `regularised_flow`."""
    if trace == "closed_form":
        dz_dt, trace_value = cnf._returning_field_and_trace(func)(z, t, params)
        probe_vjp = (make_vjp(lambda z: func(z, t, params)[0])(z)[0](noise) if jacobian
                     else None)
        return dz_dt, trace_value, probe_vjp
    if trace == "exact":
        dz_dt, trace_value = cnf.exact_trace(func, z, t, params)
        probe_vjp = make_vjp(lambda z: func(z, t, params))(z)[0](noise) if jacobian else None
        return dz_dt, trace_value, probe_vjp
    vjp, dz_dt = make_vjp(lambda z: func(z, t, params))(z)
    probe_vjp = vjp(noise)
    return dz_dt, ops.sum(ops.multiply(probe_vjp, noise), axis=1), probe_vjp


def _solve_with_integrals(rates, y0, t, params, count, error_control, odeint_options,
                          controlled=0):
    """Solve the state [flattened y, ``controlled`` integrals, ``count`` regularisation
    integrals] (B, D + controlled + count) under ``rates`` (``(z, t, params) -> (dz/dt,
    [rate (B,)] * controlled, [rate (B,)] * count)``); returns ``(ys, [integral] *
    (controlled + count))``. Without ``error_control`` the last ``count`` are carried times
    `UNCONTROLLED_SCALE`."""
    shape = tuple(getval(y0).shape)
    batch, dim = shape[0], math.prod(shape[1:])
    scale = 1.0 if error_control else UNCONTROLLED_SCALE
    dtype = getval(y0).dtype

    def field(state, t, params):
        z = ops.reshape(ops.getitem(state, (slice(None), slice(0, dim))), shape)
        dz_dt, kept, regularising = rates(z, t, params)
        columns = kept + [ops.multiply(scale, rate) for rate in regularising]
        return ops.concatenate([ops.reshape(dz_dt, (batch, dim))]
                               + [ops.reshape(rate, (batch, 1)) for rate in columns], axis=1)

    start = backend.xp.zeros((batch, controlled + count), dtype=dtype)
    states = odeint(field, ops.concatenate([ops.reshape(y0, (batch, dim)), start], axis=1), t,
                    params, **odeint_options)
    steps = getval(states).shape[0]
    ys = ops.reshape(ops.getitem(states, (Ellipsis, slice(0, dim))), (steps,) + shape)
    integrals = [ops.getitem(states, (Ellipsis, dim + k)) for k in range(controlled + count)]
    return ys, integrals[:controlled] + [ops.divide(value, scale)
                                         for value in integrals[controlled:]]


def _check_regularisers(regularisers):
    if isinstance(regularisers, str) or not isinstance(regularisers, (tuple, list)):
        raise TypeError(f"regularisers must be a tuple of names from {REGULARISERS}, e.g. "
                        f"('kinetic',), got {regularisers!r}")
    for name in regularisers:
        check_choice("each of regularisers", name, REGULARISERS)
    if len(set(regularisers)) != len(regularisers):
        raise ValueError(f"regularisers must name each integral once, got {regularisers!r}")
    return tuple(regularisers)


def _check_batch_first(y0, name):
    value = getval(y0)
    if not hasattr(value, "ndim") or value.ndim < 2:
        raise ValueError(f"{name} must be an array with the batch axis first, shape (batch, "
                         f"...), got {getattr(value, 'shape', type(value).__name__)}; add "
                         f"the axis for one sample, e.g. {name}[None]")
    if value.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array, got dtype {value.dtype}")
    return y0


def _check_noise(noise, needed, y0, what):
    shape = getval(y0).shape
    if not needed:
        if noise is not None:
            raise ValueError(f"noise (the Hutchinson probe) is used only with {what}, which "
                             f"this call does not ask for; leave it out")
        return None
    if noise is None or getattr(noise, "shape", None) != shape:
        raise ValueError(f"noise must be an array of the state's shape {shape} for {what} "
                         f"(Rademacher or standard normal probes), got "
                         f"{getattr(noise, 'shape', noise)!r}")
    if noise.dtype != getval(y0).dtype:
        raise ValueError(f"noise must have the state's dtype {getval(y0).dtype}, got "
                         f"{noise.dtype}")
    return noise


def _direction(t):
    """+1.0 for increasing ``t``, -1.0 for decreasing (checked in full by `odeint`)."""
    host = backend.to_numpy(getval(t) if hasattr(getval(t), "ndim")
                            else backend.asarray(t, dtype="float64"))
    if host.ndim != 1:
        raise ValueError(f"t must be one time grid for the whole batch, a 1-D array, got shape "
                         f"{host.shape}; per-sample grids (B, T), which odeint takes, are not "
                         f"supported here: solve the samples that share a grid together, one "
                         f"call per grid")
    if host.shape[0] < 2:
        raise ValueError(f"t must hold at least 2 times (the start and an output time), got "
                         f"shape {host.shape}")
    return 1.0 if host[-1] > host[0] else -1.0
