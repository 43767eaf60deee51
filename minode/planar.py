"""Planar flows, discrete and continuous: the two models of Chen et al. 2018, sec. 4.1.

The discrete planar normalizing flow (Rezende & Mohamed 2015, sec. 4.1; the paper's eq. (7))
stacks K layers z <- z + u h(w^T z + b) with h = tanh. Each changes the log-density by
-log|det df/dz| = -log|1 + u^T psi(z)|, psi(z) = h'(w^T z + b) w (matrix determinant lemma).

The planar continuous normalizing flow (eq. (9)-(10), Appendix A.1) is the same unit as a
vector field, M of them added up, each switched on and off by a gate sigma_n(t) in (0, 1):

    dz/dt = (1/M) sum_n sigma_n(t) u_n(t) h(w_n(t)^T z + b_n(t)),

with w_n, u_n, b_n and the gates' logits all outputs of one small network of t (a
hypernetwork, sec. 4 "Time-dependent dynamics"). The paper writes the plain sum (eq. (10));
the factor 1/M (a rescaling of every u_n, so the same family of fields) keeps the initial
field's size from growing with M, as the average over units in torchdiffeq's example does.
The gate is one scalar per unit, as the paper describes; torchdiffeq's example gates each unit
per dimension instead.

Its Jacobian is a sum of rank-one matrices, so its trace needs no autograd:
tr(df/dz) = (1/M) sum_n sigma_n (1 - h_n^2) w_n . u_n (eq. (28), summed as in eq. (10)).
Eq. (10) as printed reads d log p/dt = sum_n tr(df_n/dz); Theorem 1 (eq. (8)) gives the minus
sign, -sum_n tr(df_n/dz), which `minode.cnf.flow` applies.
"""
from minode import backend, nn, ops
from minode.checks import check_positive_int

__all__ = ["init_planar_cnf", "planar_cnf", "planar_cnf_with_trace", "init_planar_flow",
           "u_hat", "planar_flow", "planar_flow_inverse"]

# ============================================================================ the planar CNF


def init_planar_cnf(rng, dim=2, units=32, hidden=32, dtype="float64"):
    """Parameters of `planar_cnf`: the hypernetwork t -> hidden -> hidden -> (w, u, b, gate).

    An MLP with tanh layers (`minode.nn.init_mlp`, PyTorch's initialisation) whose output of
    size 2 * units * dim + 2 * units holds, per unit n, w_n (dim), u_n (dim), b_n and the gate
    logit. ``units`` is the paper's M.
    """
    check_positive_int("dim", dim)
    check_positive_int("units", units)
    check_positive_int("hidden", hidden)
    return {"hyper": nn.init_mlp(rng, [1, hidden, hidden, units * (2 * dim + 2)], dtype)}


def _field_and_trace(z, t, params):
    """[dz/dt, tr(df/dz)] (B, D + 1) of the planar CNF at time ``t``.

    The hypernetwork maps t (as a vector of one entry) to the vector of every unit's w, u, b
    and gate logit; `minode.ops.planar_hidden` and `minode.ops.planar_field_and_trace` compute
    the field and its trace from it in two traced primitives, where one primitive per
    operation would be 17 (this runs at every evaluation of the field).
    """
    hyper = nn.mlp(params["hyper"], ops.reshape(t, (1,)))
    dim = z.shape[1]
    units = hyper.shape[0] // (2 * dim + 2)
    return ops.planar_field_and_trace(ops.planar_hidden(z, hyper, units), hyper, units)


def planar_cnf(z, t, params):
    """dz/dt = (1/M) sum_n sigma_n(t) u_n(t) tanh(w_n(t)^T z + b_n(t)) per row of ``z`` (B, D).

    A vector field ``func(z, t, params)`` for `minode.odeint` or `minode.cnf.flow`.
    """
    return ops.getitem(_field_and_trace(z, t, params), (slice(None), slice(0, z.shape[1])))


def planar_cnf_with_trace(z, t, params):
    """``(dz/dt, tr(df/dz))`` of `planar_cnf`, the trace in closed form (eq. (28), summed).

    For f_n = sigma_n u_n h(w_n^T z + b_n), df_n/dz = sigma_n h'_n u_n w_n^T, a rank-one matrix
    with trace sigma_n (1 - h_n^2) w_n . u_n; the field is their mean over the M units. Use it
    with ``flow(..., trace="closed_form")``.
    """
    both = _field_and_trace(z, t, params)
    dim = z.shape[1]
    return ops.getitem(both, (slice(None), slice(0, dim))), ops.getitem(both, (slice(None), dim))


# `minode.cnf.flow` solves [dz/dt, tr(df/dz)] as one array: this gives it that array directly.
planar_cnf_with_trace.joined_field_and_trace = _field_and_trace


# ============================================================================ the planar NF


def init_planar_flow(rng, dim=2, layers=8, dtype="float64"):
    """Parameters of `planar_flow` with K = ``layers``: ``{"w", "u": (K, D), "b": (K,)}``.

    w ~ N(0, 1) gives each layer a nonlinearity across the data's scale; u ~ N(0, 0.1^2) and
    b ~ N(0, 0.1^2) start the flow near the identity.
    """
    check_positive_int("dim", dim)
    check_positive_int("layers", layers)

    def normal(std, *shape):
        return backend.asarray((std * rng.standard_normal(shape)).astype(dtype))

    return {"w": normal(1.0, layers, dim), "u": normal(0.1, layers, dim),
            "b": normal(0.1, layers)}


def u_hat(u, w):
    """u moved along w so that w^T u_hat = m(w^T u) > -1: each layer stays invertible.

    u_hat = u + (m(w^T u) - w^T u) w / |w|^2 with m(x) = -1 + log(1 + e^x) (Rezende & Mohamed
    2015, Appendix A.1). ``u``, ``w``: one vector (D,) or one per layer (K, D). In float64,
    m(x) rounds to -1 for x below about -36, where the layer's Jacobian can become singular.
    """
    # ops.multiply: u or w alone may be traced, and a plain CuPy array on the left of * does not
    # hand over to a traced one; the sum below starts with a term traced whenever either is.
    w_dot_u = ops.sum(ops.multiply(w, u), axis=-1, keepdims=True)
    shift = ops.softplus(w_dot_u) - 1.0 - w_dot_u
    # ops.divide, not /: on NumPy a traced / runs autograd's VJP (-g x / y^2), which rounds
    # differently from ops.divide's (-g result / y) and would move the CNF tutorial's numbers.
    return ops.divide(shift, ops.sum(ops.square(w), axis=-1, keepdims=True)) * w + u


def _layers(params):
    """(w, u_hat, b) of every layer at once, (K, D), (K, D), (K,): `u_hat` is computed row by
    row in one pass, so the trace holds its dozen primitives once, not once per layer."""
    w = params["w"]
    return w, u_hat(params["u"], w), params["b"]


def planar_flow(params, z):
    """``(x, log_det)``: the K planar layers applied to each row of ``z`` (B, D), in order.

    x = f_K(... f_1(z)), f_k(z) = z + u_hat_k tanh(w_k^T z + b_k), and
    log_det = sum_k log|1 + u_hat_k^T psi_k| (B,), so that log q(x) = log p(z) - log_det (the
    sign convention of `minode.cnf.flow`).
    """
    # Only the layers' chain z -> x runs layer by layer. The log-determinant needs each layer's
    # h alone, so it is computed once for all layers from their stacked h: a traced primitive
    # costs microseconds, and per layer this leaves 7 of them where there were 32. Each w_k is
    # cut as a column (D, 1) and h kept as a column (B, 1), so that z w_k is one product and
    # h u_k broadcasts, with no reshapes.
    dim = params["w"].shape[1]
    if getattr(z, "ndim", None) != 2 or z.shape[1] != dim:
        raise ValueError(f"z must be an array (batch, {dim}) of states, one per row, for layers "
                         f"of dimension {dim}, got shape {getattr(z, 'shape', type(z))}; a "
                         f"single state of shape ({dim},) is z[None]")
    w, u, b = _layers(params)
    columns = ops.reshape(w, tuple(w.shape) + (1,))                              # (K, D, 1)
    hs = []
    for k in range(w.shape[0]):
        h = ops.tanh(ops.matmul(z, ops.getitem(columns, k)) + ops.getitem(b, k))  # (B, 1)
        hs.append(h)
        z = h * ops.getitem(u, k) + z       # traced term on the left: z may be plain data
    slopes = 1.0 - ops.square(ops.stack(hs, axis=0))              # h'(w_k^T z + b_k), (K, B, 1)
    w_dot_u = ops.reshape(ops.sum(ops.multiply(w, u), axis=1), (-1, 1, 1))        # (K, 1, 1)
    # 1 + u_hat^T psi = 1 + h' w^T u_hat > 0, since w^T u_hat > -1 and 0 < h' <= 1. The sum
    # over axis 0 adds the layers one after the other, in layer order.
    log_det = ops.sum(ops.log(1.0 + slopes * w_dot_u), axis=0)
    return z, ops.reshape(log_det, (-1,))


def planar_flow_inverse(params, x, iterations=80):
    """z with `planar_flow` (z) = x, each row of ``x`` (B, D), by root finding (not traced).

    Layer by layer from the last: for y = z + u_hat h(w^T z + b), alpha = w^T z solves the
    scalar equation w^T y = alpha + (w^T u_hat) h(alpha + b), strictly increasing in alpha
    (its slope 1 + w^T u_hat h' is positive) and with its root within |w^T u_hat| of w^T y
    (|h| <= 1). Bisection over that bracket, ``iterations`` halvings; then
    z = y - u_hat h(alpha + b). Values only: the result is not differentiable.
    """
    check_positive_int("iterations", iterations)
    xp = backend.xp
    y = xp.array(x)
    ws, us, bs = _layers(params)
    for k in reversed(range(ws.shape[0])):
        w, u, b = ws[k], us[k], bs[k]
        w_dot_u, target = xp.sum(w * u), y @ w
        low, high = target - xp.abs(w_dot_u), target + xp.abs(w_dot_u)
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            below = middle + w_dot_u * xp.tanh(middle + b) < target
            low, high = xp.where(below, middle, low), xp.where(below, high, middle)
        alpha = 0.5 * (low + high)
        y = y - xp.tanh(alpha + b)[:, None] * u
    return y
