"""Matrix multiplication and its VJP: for C = A B, dA = dC B^T and dB = A^T dC.

The primitive multiplies op(A) op(B), where op transposes the last two axes where asked (as
BLAS's gemm does), so each VJP is one such product and the VJP of a VJP is one again.
"""
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from minode import backend
from minode.ops.broadcasting import unbroadcast
from minode.ops import reductions
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
    a_ndim, b_ndim = getval(a).ndim, getval(b).ndim  # read once, off the untraced values
    if a_ndim == 0 or b_ndim == 0:
        raise ValueError(f"matmul needs arrays of at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    if a_ndim > 1 and b_ndim > 1:
        return _matmul(a, b)
    result = _matmul(reshape(a, (1, -1)) if a_ndim == 1 else a,
                     reshape(b, (-1, 1)) if b_ndim == 1 else b)
    shape = result.shape[:-2] + (result.shape[-2:-1] if a_ndim > 1 else ()) \
        + (result.shape[-1:] if b_ndim > 1 else ())
    return reshape(result, shape)  # drop the axes that promoted a 1-D operand


@primitive
def linear(x, w, b):
    """``x @ w^T + b``, an affine layer in one primitive: ``x`` (..., n_in), ``w``
    (n_out, n_in), ``b`` (n_out,); returns (..., n_out).

    One primitive where matmul, transpose and add would be three: a Neural ODE's layers run at
    every evaluation of f, and each traced primitive costs time. Its VJPs, for
    Y = X W^T + b: dX = dY W, dW = dY^T X (over every leading axis of X), db = sum of dY over
    them.
    """
    return backend.xp.matmul(x, backend.xp.swapaxes(w, -1, -2)) + b


def _rows(array, width):
    """``array`` as a matrix of ``width`` columns: its leading axes become one (so that the
    VJPs, and theirs, are 2-D products for any number of leading axes)."""
    return array if array.ndim == 2 else reshape(array, (-1, width))


defvjp(linear,
       lambda result, x, w, b: lambda grad_out: reshape(
           _matmul(_rows(grad_out, w.shape[0]), w), x.shape),
       lambda result, x, w, b: lambda grad_out: _matmul(
           _rows(grad_out, w.shape[0]), _rows(x, w.shape[1]), True, False),
       lambda result, x, w, b: lambda grad_out: reductions.sum(
           _rows(grad_out, w.shape[0]), axis=0))
