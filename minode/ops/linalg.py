"""Matrix multiplication and its VJP: for C = A B, dA = dC B^T and dB = A^T dC."""
from autograd.extend import defvjp, primitive

from minode import backend
from minode.ops.broadcasting import unbroadcast
from minode.ops.shapes import reshape, swapaxes


@primitive
def _matmul(a, b):
    return backend.xp.matmul(a, b)


def _t(x):
    """Swap the last two axes (the matrix transpose of a batch)."""
    return swapaxes(x, -1, -2)


# Written with _matmul itself, so the VJP of a VJP is matrix products again.
defvjp(_matmul,
       lambda result, a, b: lambda grad_out: unbroadcast(_matmul(grad_out, _t(b)), a),
       lambda result, a, b: lambda grad_out: unbroadcast(_matmul(_t(a), grad_out), b))


def matmul(a, b):
    """``a @ b`` with NumPy's rules: batched over leading axes, 1-D operands promoted."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs arrays of at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    result = _matmul(reshape(a, (1, -1)) if a.ndim == 1 else a,
                     reshape(b, (-1, 1)) if b.ndim == 1 else b)
    if a.ndim > 1 and b.ndim > 1:
        return result
    shape = result.shape[:-2] + (result.shape[-2:-1] if a.ndim > 1 else ()) \
        + (result.shape[-1:] if b.ndim > 1 else ())
    return reshape(result, shape)  # drop the axes that promoted a 1-D operand
