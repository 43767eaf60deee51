"""The gated planar units of the planar CNF (Chen et al. 2018, eq. (9)-(10), eq. (28)) as two
primitives, with their VJPs.

The hypernetwork of `minode.planar` puts out one vector ``hyper`` that holds, for M units in D
dimensions, w (M, D), u (M, D), b (M,) and the gate logits (M,) one after the other. From it
and the states z (B, D) the planar CNF computes

    h = tanh(z w^T + b)                                          (B, M)   `planar_hidden`
    weight = sigmoid(logits) / M                                 (M,)
    dz/dt = (h * weight) u                                       (B, D)   eq. (10), gated
    tr(df/dz) = (1 - h^2) (weight * sum_d w * u)                 (B,)     eq. (28), summed

(`planar_field_and_trace` returns the last two side by side, (B, D + 1)). Written with one
primitive per operation, these lines are 16 traced nodes (four of them cutting ``hyper`` into
its pieces, five more acting on those M-sized pieces alone) at every evaluation of the field,
and the adjoint's backward pass traces the field at every one of its evaluations: a traced
primitive costs microseconds, more than the arithmetic on such small arrays. Two primitives are
two nodes. h is the output of the first, so the second's VJP reads it instead of computing the
tanh again.

The VJPs are the chain rule through the lines above, written with minode's primitives (so they
are differentiable again, to any order) and in the same operations, in the same order, as the
VJPs of those one-operation primitives: the gradients equal theirs to the last bit.
"""
from types import SimpleNamespace

from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from minode import backend
from minode.ops.elementwise import add, divide, multiply, sigmoid, square, subtract
from minode.ops.linalg import _matmul
from minode.ops.reductions import sum as reduce_sum
from minode.ops.shapes import _embed, getitem, reshape, window


# The primitives the VJPs below are written in. autograd's `primitive` wrapper keeps the plain
# function it wraps as ``.fun`` and, when no argument is traced, checks every argument for a
# box and then calls it. A VJP that is not itself differentiated (the adjoint's first-order
# backward pass, the usual case) runs some 40 of them per evaluation, so it calls the plain
# functions directly: the same arithmetic without that check. When any of its inputs is traced
# (a higher derivative) it calls the primitives, which trace it.
_PRIMITIVES = SimpleNamespace(add=add, divide=divide, embed=_embed, getitem=getitem,
                              matmul=_matmul, multiply=multiply, reshape=reshape,
                              sigmoid=sigmoid, square=square, subtract=subtract, sum=reduce_sum,
                              window=window)
_PLAIN_FUNCTIONS = SimpleNamespace(**{name: function.fun
                                      for name, function in vars(_PRIMITIVES).items()})


def _primitives_for(*values):
    """`_PRIMITIVES` when any of ``values`` is traced, else `_PLAIN_FUNCTIONS`."""
    return _PRIMITIVES if any(isbox(value) for value in values) else _PLAIN_FUNCTIONS


def _offsets(units, dim):
    """Where w, u, b and the gate logits start in ``hyper``."""
    m, d = units, dim
    return {"w": 0, "u": m * d, "b": 2 * m * d, "logits": 2 * m * d + m}


def _shapes(units, dim):
    return {"w": (units, dim), "u": (units, dim), "b": (units,), "logits": (units,)}


def _plain_pieces(hyper, units, dim):
    """(w, u, b, logits): views of ``hyper``, for the primitives' own (untraced) arithmetic."""
    m, d = units, dim
    return (hyper[:m * d].reshape(m, d), hyper[m * d:2 * m * d].reshape(m, d),
            hyper[2 * m * d:2 * m * d + m], hyper[2 * m * d + m:])


def _traced_pieces(p, hyper, units, dim):
    """{name: piece of ``hyper``} cut by `window` (``p``'s), for the VJPs: traced where
    ``hyper`` is (a VJP differentiated again)."""
    offsets, shapes = _offsets(units, dim), _shapes(units, dim)
    return {name: p.window(hyper, offsets[name], shape) for name, shape in shapes.items()}


def _placed(p, hyper, units, dim, grads):
    """A gradient of ``hyper``'s shape: each piece's gradient in ``grads`` ({name: gradient})
    in the piece's place (the VJP of the `window` that cut it), zeros elsewhere."""
    offsets, total = _offsets(units, dim), None
    for name, grad in grads.items():
        placed = p.embed(grad, offsets[name], hyper.shape[0])
        total = placed if total is None else p.add(total, placed)
    return total


def _dim_of(hyper, units):
    """D from the length units * (2 D + 2) of ``hyper``, which is checked."""
    dim = (hyper.shape[0] // units - 2) // 2 if hyper.ndim == 1 and units > 0 else -1
    if dim < 1 or hyper.shape[0] != units * (2 * dim + 2):
        raise ValueError(f"hyper must be a vector of units * (2 * dim + 2) entries (w, u, b and "
                         f"a gate logit per unit) for units={units}, got shape {hyper.shape}")
    return dim


def _check_rows(name, x, width, what):
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must be an array (batch, {width}) of {what}, got shape "
                         f"{x.shape}")


# ------------------------------------------------------------------------------- the hidden h

@primitive
def planar_hidden(z, hyper, units):
    """h = tanh(z w^T + b) (B, M) of the M planar units whose w and b ``hyper`` holds (module
    docstring), for states ``z`` (B, D)."""
    dim = _dim_of(hyper, units)
    _check_rows("z", z, dim, "states")
    xp = backend.xp
    w, _, b, _ = _plain_pieces(hyper, units, dim)
    return xp.tanh(xp.matmul(z, xp.swapaxes(w, -1, -2)) + b)  # as `ops.linear`, `ops.tanh`


def _hidden_vjp(argnums, h, args, kwargs):
    # For a = z w^T + b, h = tanh(a): da = dh (1 - h^2) (`ops.tanh`'s VJP), then `ops.linear`'s
    # VJPs: dz = da w, dw = da^T z, db = the sum of da over the rows.
    z, hyper, units = args
    dim = _dim_of(hyper, units)

    def vjp(grad_h):
        p = _primitives_for(grad_h, h, z, hyper)
        grad_a = p.multiply(grad_h, p.subtract(1, p.multiply(h, h)))
        grads = []
        if 0 in argnums:
            grads.append(p.matmul(grad_a, _traced_pieces(p, hyper, units, dim)["w"]))
        if 1 in argnums:
            grads.append(_placed(p, hyper, units, dim, {
                "w": p.matmul(grad_a, z, True, False), "b": p.sum(grad_a, axis=0)}))
        return grads
    return vjp


defvjp_argnums(planar_hidden, _hidden_vjp)


# ----------------------------------------------------------------------- the field and trace

@primitive
def planar_field_and_trace(h, hyper, units):
    """[dz/dt, tr(df/dz)] (B, D + 1) of the gated planar field, from the hidden values ``h``
    (B, M) of `planar_hidden` and the units that ``hyper`` holds (module docstring)."""
    dim = _dim_of(hyper, units)
    _check_rows("h", h, units, "hidden values (one per unit)")
    xp = backend.xp
    w, u, _, logits = _plain_pieces(hyper, units, dim)
    # as `ops.sigmoid` and the arithmetic of the module docstring's lines compute them
    weight = 0.5 * (xp.tanh(0.5 * logits) + 1) / units
    dz_dt = xp.matmul(h * weight, u)
    trace = xp.matmul(1.0 - xp.square(h), weight * xp.sum(w * u, axis=1))
    return xp.concatenate([dz_dt, trace[:, None]], axis=1)


def _field_vjp(argnums, result, args, kwargs):
    # Each line of the module docstring's, backwards; each product's VJP as autograd's and
    # minode's give it (matmul's, with a 1-D operand, as an outer product and a matrix-vector
    # product), and the gradients that meet at one value added as a pair.
    h, hyper, units = args
    dim = _dim_of(hyper, units)
    p = _primitives_for(h, hyper)
    pieces = _traced_pieces(p, hyper, units, dim)
    w, u = pieces["w"], pieces["u"]
    gate = p.sigmoid(pieces["logits"])
    weight = p.divide(gate, units)
    unit_sums = p.sum(p.multiply(w, u), axis=1)                          # w_n . u_n
    per_unit = p.multiply(weight, unit_sums)

    def vjp(grad_out):
        p = _primitives_for(grad_out, h, hyper)
        grad_dz = p.getitem(grad_out, (slice(None), slice(0, dim)))
        grad_trace = p.reshape(p.getitem(grad_out, (slice(None), dim)), (-1, 1))
        grad_hw = p.matmul(grad_dz, u, False, True)                       # dz/dt = (h * weight) u
        grad_slope = p.matmul(grad_trace, p.reshape(per_unit, (1, -1)))   # trace = slope per_unit
        grad_per_unit = p.reshape(
            p.matmul(p.subtract(1.0, p.square(h)), grad_trace, True, False), (-1,))
        grads = []
        if 0 in argnums:  # h: through h * weight and through slope = 1 - h^2
            # (a + (2 h) (-g) in the one-operation VJPs; a - (2 h) g is the same number)
            grads.append(p.subtract(p.multiply(weight, grad_hw), p.multiply(2 * h, grad_slope)))
        if 1 in argnums:
            grad_weight = p.add(p.sum(p.multiply(h, grad_hw), axis=0),
                                p.multiply(unit_sums, grad_per_unit))
            grad_logits = p.multiply(p.multiply(p.divide(grad_weight, units), gate),
                                     p.subtract(1, gate))                  # `ops.sigmoid`'s VJP
            grad_pair = p.reshape(p.multiply(weight, grad_per_unit), (-1, 1))  # d/d(w_n u_n)
            grad_u = p.add(p.matmul(p.multiply(h, weight), grad_dz, True, False),
                           p.multiply(w, grad_pair))
            grads.append(_placed(p, hyper, units, dim, {
                "w": p.multiply(u, grad_pair), "u": grad_u, "logits": grad_logits}))
        return grads
    return vjp


defvjp_argnums(planar_field_and_trace, _field_vjp)
