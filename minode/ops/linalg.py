"""Matrix multiplication (also in the affine layer `linear`), linear solves, and their VJPs.

Multiplication: for C = A B, dA = dC B^T and dB = A^T dC. The primitive multiplies
op(A) op(B), where op transposes the last two axes where asked (as BLAS's gemm does), so each
VJP is one such product and the VJP of a VJP is one again.

Solves: for x = A^-1 b, db = A^-T dx and dA = -db x^T (M. Giles, "An extended collection of
matrix derivative results for forward and reverse mode AD", 2008). The primitive solves with A
or A^T from one LU factorisation, so the VJP with respect to b is a solve with the same
factors, and the VJP of a VJP is one again.
"""
import functools

import numpy
import scipy.linalg
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from minode import backend
from minode.ops.broadcasting import unbroadcast
from minode.ops import reductions
from minode.ops.elementwise import multiply, negative
from minode.ops.shapes import as_shape, reshape


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
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1] or b.shape != w.shape[:1]:
        raise ValueError(f"linear needs x (..., n_in), w (n_out, n_in) and b (n_out,), got "
                         f"shapes x {x.shape}, w {w.shape}, b {b.shape}")
    return backend.xp.matmul(x, backend.xp.swapaxes(w, -1, -2)) + b


def _rows(array, width):
    """``array`` as a matrix of ``width`` columns: its leading axes become one (so that the
    VJPs, and theirs, are 2-D products for any number of leading axes)."""
    return array if array.ndim == 2 else reshape(array, (-1, width))


defvjp(linear,
       lambda result, x, w, b: lambda grad_out: as_shape(
           _matmul(_rows(grad_out, w.shape[0]), w), x.shape),
       lambda result, x, w, b: lambda grad_out: _matmul(
           _rows(grad_out, w.shape[0]), _rows(x, w.shape[1]), True, False),
       lambda result, x, w, b: lambda grad_out: reductions.sum(
           _rows(grad_out, w.shape[0]), axis=0))


class LUFactors:
    """The LU factorisation with partial pivoting of a square matrix (LAPACK's getrf).

    ``xp.linalg`` has no factorisation that can be reused (NumPy's and CuPy's ``linalg`` solve
    from scratch each time), and the matrices of a stiff solve are small (a GPU's LU of them is
    latency-bound), so the factors live in host memory, computed by LAPACK through SciPy on a
    host copy, on every backend: each solve copies its right side to the host and back.
    (LAPACK is called directly, as ``scipy.linalg.lu_factor`` and ``lu_solve`` do after their
    checks, which cost more than the solve for the small matrices of a stiff solve.)
    ``singular`` is True when the matrix is not finite or a pivot is zero: then the factors
    cannot be used to solve.
    """

    def __init__(self, matrix):
        host = backend.to_numpy(matrix)
        if host.ndim != 2 or host.shape[0] != host.shape[1]:
            raise ValueError(f"lu_factor needs a square matrix, got shape {host.shape}")
        self.size = host.shape[0]
        self.singular = not bool(numpy.isfinite(host).all())
        if self.singular or self.size == 0:  # a 0 x 0 matrix is its own (empty) inverse
            return
        getrf, self.getrs = _lapack_lu(host.dtype)
        self.lu, self.pivots, info = getrf(host)
        self.singular = info != 0  # info > 0: U[info - 1, info - 1] is exactly zero

    def solve(self, rhs, transpose):
        """The solution of A x = rhs (A^T x = rhs when ``transpose``) for a 1-D host ``rhs``."""
        if self.size == 0:
            return rhs
        x, info = self.getrs(self.lu, self.pivots, rhs, trans=1 if transpose else 0)
        if info != 0:
            raise ValueError(f"LAPACK getrs failed with info={info}")
        return x


@functools.lru_cache(maxsize=None)
def _lapack_lu(dtype):
    """LAPACK's (getrf, getrs) for ``dtype``, looked up once (a step factorises every trial)."""
    return scipy.linalg.get_lapack_funcs(("getrf", "getrs"), dtype=dtype)


def lu_factor(matrix):
    """The `LUFactors` of a plain (untraced) square matrix, for `lu_solve`."""
    return LUFactors(matrix)


@primitive
def lu_solve(matrix, rhs, factors, transpose=False):
    """x with ``matrix @ x = rhs`` (``matrix.T @ x = rhs`` when ``transpose``), for a 1-D ``rhs``.

    ``factors`` must be ``lu_factor`` of ``matrix``'s value: it does the work, while
    ``matrix`` is passed so that autograd can send it its gradient. The result is an array of
    the active backend.
    """
    if factors.singular:
        raise ValueError("lu_solve: the matrix is singular or not finite (see "
                         "LUFactors.singular)")
    return backend.asarray(factors.solve(backend.to_numpy(rhs), transpose))


def _outer(u, v):
    return multiply(reshape(u, (-1, 1)), reshape(v, (1, -1)))


def _lu_solve_grad_matrix(x, matrix, rhs, factors, transpose=False):
    # A x = b: dA = -(A^-T dx) x^T; A^T x = b: dA = -x (A^-1 dx)^T, the transpose.
    def vjp(grad_out):
        grad_rhs = lu_solve(matrix, grad_out, factors, not transpose)
        return negative(_outer(x, grad_rhs) if transpose else _outer(grad_rhs, x))
    return vjp


def _lu_solve_grad_rhs(x, matrix, rhs, factors, transpose=False):
    return lambda grad_out: lu_solve(matrix, grad_out, factors, not transpose)


defvjp(lu_solve, _lu_solve_grad_matrix, _lu_solve_grad_rhs)
