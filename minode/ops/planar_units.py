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
primitive per operation, these are 17 traced nodes on M-sized pieces at every evaluation of
the field, and the adjoint's backward pass traces the field at every one of its evaluations: a
traced primitive costs microseconds, more than the arithmetic on such small arrays. Two
primitives are two nodes. h is the output of the first, so the second's VJP reads it instead of
computing the tanh again.

The VJPs are the chain rule through the lines above, written with minode's primitives (so they
are differentiable again, to any order) and in the same operations, in the same order, as the
VJPs of those one-operation primitives: the gradients equal theirs to the last bit.
"""
from autograd.extend import defvjp_argnums, primitive

from minode import backend
from minode.ops.elementwise import add, divide, multiply, sigmoid, square, subtract
from minode.ops.linalg import _matmul
from minode.ops.reductions import sum as reduce_sum
from minode.ops.shapes import _embed, getitem, reshape, window


def _offsets(units, dim):
    """Where w, u, b and the gate logits start in ``hyper``."""
    m, d = units, dim
    return {"w": 0, "u": m * d, "b": 2 * m * d, "logits": 2 * m * d + m}


def _shapes(units, dim):
    return {"w": (units, dim), "u": (units, dim), "b": (units,), "logits": (units,)}


def _plain_piece(hyper, name, units, dim):
    """One piece of ``hyper`` (a view), for the primitives' own, untraced, computations."""
    start, shape = _offsets(units, dim)[name], _shapes(units, dim)[name]
    return backend.xp.reshape(hyper[start:start + _size(shape)], shape)


def _traced_pieces(hyper, units, dim):
    """{name: piece of ``hyper``} cut by `window`, for the VJPs: traced where ``hyper`` is (a
    VJP differentiated again)."""
    offsets, shapes = _offsets(units, dim), _shapes(units, dim)
    return {name: window(hyper, offsets[name], shape) for name, shape in shapes.items()}


def _size(shape):
    size = 1
    for n in shape:
        size *= n
    return size


def _placed(hyper, units, dim, grads):
    """A gradient of ``hyper``'s shape: each piece's gradient in ``grads`` ({name: gradient})
    in the piece's place (the VJP of the `window` that cut it), zeros elsewhere."""
    offsets, total = _offsets(units, dim), None
    for name, grad in grads.items():
        placed = _embed(grad, offsets[name], hyper.shape[0])
        total = placed if total is None else add(total, placed)
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
    w, b = _plain_piece(hyper, "w", units, dim), _plain_piece(hyper, "b", units, dim)
    return xp.tanh(xp.matmul(z, xp.swapaxes(w, -1, -2)) + b)  # as `ops.linear`, `ops.tanh`


def _hidden_vjp(argnums, h, args, kwargs):
    # For a = z w^T + b, h = tanh(a): da = dh (1 - h^2) (`ops.tanh`'s VJP), then `ops.linear`'s
    # VJPs: dz = da w, dw = da^T z, db = the sum of da over the rows.
    z, hyper, units = args
    dim = _dim_of(hyper, units)

    def vjp(grad_h):
        grad_a = multiply(grad_h, subtract(1, multiply(h, h)))
        grads = []
        if 0 in argnums:
            grads.append(_matmul(grad_a, _traced_pieces(hyper, units, dim)["w"]))
        if 1 in argnums:
            grads.append(_placed(hyper, units, dim, {
                "w": _matmul(grad_a, z, True, False), "b": reduce_sum(grad_a, axis=0)}))
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
    w, u, logits = (_plain_piece(hyper, name, units, dim) for name in ("w", "u", "logits"))
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
    pieces = _traced_pieces(hyper, units, dim)
    w, u = pieces["w"], pieces["u"]
    gate = sigmoid(pieces["logits"])
    weight = divide(gate, units)
    unit_sums = reduce_sum(multiply(w, u), axis=1)                       # w_n . u_n
    per_unit = multiply(weight, unit_sums)

    def vjp(grad_out):
        grad_dz = getitem(grad_out, (slice(None), slice(0, dim)))
        grad_trace = reshape(getitem(grad_out, (slice(None), dim)), (-1, 1))
        grad_hw = _matmul(grad_dz, u, False, True)                        # dz/dt = (h * weight) u
        grad_slope = _matmul(grad_trace, reshape(per_unit, (1, -1)))      # trace = slope per_unit
        grad_per_unit = reshape(_matmul(subtract(1.0, square(h)), grad_trace, True, False),
                                (-1,))
        grads = []
        if 0 in argnums:  # h: through h * weight and through slope = 1 - h^2
            # (a + (2 h) (-g) in the one-operation VJPs; a - (2 h) g is the same number)
            grads.append(subtract(multiply(weight, grad_hw), multiply(2 * h, grad_slope)))
        if 1 in argnums:
            grad_weight = add(reduce_sum(multiply(h, grad_hw), axis=0),
                              multiply(unit_sums, grad_per_unit))
            grad_logits = multiply(multiply(divide(grad_weight, units), gate),
                                   subtract(1, gate))                      # `ops.sigmoid`'s VJP
            grad_pair = reshape(multiply(weight, grad_per_unit), (-1, 1))  # d/d(w_n * u_n)
            grad_u = add(_matmul(multiply(h, weight), grad_dz, True, False),
                         multiply(w, grad_pair))
            grads.append(_placed(hyper, units, dim, {
                "w": multiply(u, grad_pair), "u": grad_u, "logits": grad_logits}))
        return grads
    return vjp


defvjp_argnums(planar_field_and_trace, _field_vjp)
