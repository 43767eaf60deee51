"""Undoing broadcasting in VJPs: the gradient of a broadcast input is summed over broadcast axes."""
from minode import backend


def shape_of(x):
    """The shape of an array, or ``()`` for a Python number."""
    return getattr(x, "shape", ())


def unbroadcast(grad_out, like):
    """Sum ``grad_out`` down to the shape of ``like`` (the input that was broadcast).

    A dimension that NumPy broadcasting added in front, or stretched from size 1, received the
    same input value at every position, so its gradient is the sum over those positions.
    """
    target_shape = shape_of(like)
    extra_leading = grad_out.ndim - len(target_shape)
    if extra_leading > 0:
        grad_out = backend.xp.sum(grad_out, axis=tuple(range(extra_leading)))
    stretched = tuple(axis for axis, size in enumerate(target_shape)
                      if size == 1 and grad_out.shape[axis] != 1)
    if stretched:
        grad_out = backend.xp.sum(grad_out, axis=stretched, keepdims=True)
    dtype = getattr(like, "dtype", None)
    if dtype is not None and grad_out.dtype != dtype:
        grad_out = grad_out.astype(dtype)
    return grad_out
