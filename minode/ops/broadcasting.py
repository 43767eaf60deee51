"""Broadcasting and its adjoint, for VJPs: `broadcast_to` copies an array along new or size-1
axes, `sum_to` sums it back. Each is the other's VJP, so gradients of every order stay inside
this pair of primitives and run on every backend.
"""
from autograd.extend import defvjp, primitive

from minode import backend


def shape_of(x):
    """The shape of an array, or ``()`` for a Python number."""
    return getattr(x, "shape", ())


@primitive
def broadcast_to(x, shape, dtype=None):
    """``x`` repeated along the axes that NumPy broadcasting to ``shape`` adds in front or
    stretches from size 1; cast to ``dtype`` when given."""
    result = backend.xp.broadcast_to(x, shape)
    return result if dtype is None or result.dtype == dtype else result.astype(dtype)


@primitive
def sum_to(x, shape, dtype=None):
    """``x`` summed down to ``shape``: the adjoint of `broadcast_to` (cast to ``dtype`` when given).

    A leading axis that broadcasting added, or an axis it stretched from size 1, received the
    same input value at every position, so the gradient of that input is the sum over them.
    """
    xp = backend.xp
    extra_leading = x.ndim - len(shape)
    if extra_leading > 0:
        x = xp.sum(x, axis=tuple(range(extra_leading)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and x.shape[axis] != 1)
    if stretched:
        x = xp.sum(x, axis=stretched, keepdims=True)
    return x if dtype is None or x.dtype == dtype else x.astype(dtype)


defvjp(broadcast_to, lambda result, x, shape, dtype=None: lambda grad_out: sum_to(
    grad_out, shape_of(x), getattr(x, "dtype", None)))
defvjp(sum_to, lambda result, x, shape, dtype=None: lambda grad_out: broadcast_to(
    grad_out, x.shape, x.dtype))


def unbroadcast(grad_out, like):
    """``grad_out`` summed down to the shape (and cast to the dtype) of ``like``, the input that
    was broadcast; unchanged when it already has them."""
    shape, dtype = shape_of(like), getattr(like, "dtype", None)
    if grad_out.shape == shape and (dtype is None or grad_out.dtype == dtype):
        return grad_out
    return sum_to(grad_out, shape, dtype)
