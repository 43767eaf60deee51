"""Matrix multiplication and its VJP: for C = A B, dA = dC B^T and dB = A^T dC.

The primitive multiplies op(A) op(B), where op transposes the last two axes where asked (as
BLAS's gemm does), so each VJP is one such product and the VJP of a VJP is one again.
"""
from autograd.extend import defvjp, primitive

from minode import backend
from minode.ops.broadcasting import unbroadcast
from minode.ops.shapes import reshape


@primitive
def _matmul(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b), batched over leading axes; op swaps the last two axes where asked."""
    xp = backend.xp
    return xp.matmul(xp.swapaxes(a, -1, -2) if transpose_a else a,
                     xp.swapaxes(b, -1, -2) if transpose_b else b)


def _matmul_grad_a(result, a, b, transpose_a=False, transpose_b=False):
    # d op(A) = dC op(B)^T; when A enters transposed, dA is the transpose of that: op(B) dC^T.
    if transpose_a:
        return lambda grad_out: unbroadcast(_matmul(b, grad_out, transpose_b, True), a)
    return lambda grad_out: unbroadcast(_matmul(grad_out, b, False, not transpose_b), a)


def _matmul_grad_b(result, a, b, transpose_a=False, transpose_b=False):
    # d op(B) = op(A)^T dC; when B enters transposed, dB is the transpose of that: dC^T op(A).
    if transpose_b:
        return lambda grad_out: unbroadcast(_matmul(grad_out, a, True, transpose_a), b)
    return lambda grad_out: unbroadcast(_matmul(a, grad_out, not transpose_a, False), b)


defvjp(_matmul, _matmul_grad_a, _matmul_grad_b)


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
