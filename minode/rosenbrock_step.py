"""One step of a Rosenbrock method (`minode.rosenbrock`): stages, solution, error estimate.

The counterpart of `minode.stepping.rk_step` for stiff problems. With J and f_t from
`minode.jacobian.linearise` at the step's start, each stage is one linear solve with the
matrix M = I / gamma - h J, factorised once for the step. The stages are kept scaled as
derivatives, v_i = u_i / h in the notation of HW II, eq. (7.25), so that they combine with
the explicit engine's `linear_combination` and `interpolate` exactly as RK stages do:

    M v_i = f(y0 + h sum_j a_ij v_j, t0 + alpha_i h) + sum_j c_ij v_j + h gamma_i f_t,
    y1 = y0 + h sum_i m_i v_i,      error = h sum_i m_error_i v_i.

With quadratures (the last q entries of the state, which f does not read) M has the block
form [[M11, 0], [-h J21, I / gamma]]: the step factorises M11 only, and each stage gets the
quadratures' part of its solution as gamma (r2 + h J21 v1) (see `minode.jacobian`).

For an autonomous f (`Linearisation.autonomous`) the f_t terms are zero and are skipped.

Two implementations of the same sums. Where autograd traces nothing (a forward solve, the
adjoint's solves), the stages are the rows of one (s, n) array V and each combination is one
matrix product, y0 + h (a_i . V): a step of Van der Pol then costs about 40 microseconds
besides its five evaluations of f, against 70 for the traced form on the same untraced arrays.
Where autograd traces (backprop), each combination is a sum of traced products, as in
`minode.stepping.rk_step`.
"""
from dataclasses import dataclass

import numpy
from autograd.tracer import getval, isbox

from minode import backend, ops
from minode.stepping import linear_combination


def rosenbrock_step(rhs, method, y, t, h, linearisation):
    """Advance ``y`` from ``t`` to ``t + h`` with one step of the Rosenbrock ``method``.

    ``linearisation`` (a `minode.jacobian.Linearisation`) holds f, J and f_t at (y, t); it
    does not depend on h, so a rejected step is retried with it. Returns
    ``(y_next, error, stages)``, or None when M = I / gamma - h J is singular or not finite at
    this h (a failed trial: retry with a smaller step). Untraced inputs take
    `_untraced_step`, traced ones `_traced_step` (the module docstring says why); the two agree
    up to the order of rounding.
    """
    if not any(isbox(x) for x in (y, t, h, linearisation.value, linearisation.jacobian,
                                  linearisation.time_derivative)):
        result = _untraced_step(rhs, method, y, t, h, linearisation)
        if result is not _TRACED:
            return result
    return _traced_step(rhs, method, y, t, h, linearisation)


def _traced_step(rhs, method, y, t, h, linearisation):
    coefficients = method.floats
    solve = _stage_solver(linearisation, h, coefficients.gamma)
    if solve is None:
        return None
    with_time = not linearisation.autonomous
    stages = []
    for i in range(len(coefficients.alpha)):
        if i == 0:
            f_i = linearisation.value
        else:
            f_i = rhs(linear_combination(y, h, coefficients.a[i], stages),
                      t + coefficients.alpha[i] * h)
        right_side = linear_combination(f_i, 1.0, coefficients.c[i], stages)
        if with_time and coefficients.gamma_sums[i] != 0.0:
            right_side = right_side + (coefficients.gamma_sums[i] * h) \
                * linearisation.time_derivative
        stages.append(ops.as_shape(solve(_flat(right_side)), y.shape))
    y_next = linear_combination(y, h, coefficients.m, stages)
    error = linear_combination(0.0, h, coefficients.m_error, stages)
    return y_next, error, stages


def _stage_solver(linearisation, h, gamma):
    """A function r -> M^-1 r for flat r, from one LU factorisation of M's implicit block."""
    jacobian = linearisation.jacobian
    size = jacobian.shape[0]
    matrix = backend.xp.eye(size, dtype=jacobian.dtype) / gamma - h * jacobian
    factors = ops.lu_factor(getval(matrix))
    if factors.singular:
        return None
    coupling = linearisation.coupling
    if coupling is None:
        return lambda right_side: ops.lu_solve(matrix, right_side, factors)

    def solve(right_side):
        implicit = ops.lu_solve(matrix, ops.getitem(right_side, slice(0, size)), factors)
        quadrature = gamma * (ops.getitem(right_side, slice(size, None)) + h * coupling(implicit))
        return ops.concatenate([implicit, quadrature])
    return solve


def _flat(x):
    return x if x.ndim == 1 else ops.ravel(x)


# ---------------------------------------------------------------------------------------------
# Untraced steps
# ---------------------------------------------------------------------------------------------

_TRACED = object()  # _untraced_step's answer when f returned a traced value after all


@dataclass(frozen=True)
class _Matrices:
    """A method's coefficients as arrays of one dtype on the active backend: ``a`` and ``c``
    (s, s), strictly lower triangular; ``m`` and ``m_error`` (s,)."""

    a: object
    c: object
    m: object
    m_error: object


_matrices_cache = {}


def _matrices(coefficients, dtype):
    """`_Matrices` of the float coefficients, built once per method, dtype and backend."""
    key = (id(coefficients), dtype, backend.name)
    entry = _matrices_cache.get(key)
    if entry is not None and entry[0] is coefficients:  # an id is unique while its object lives
        return entry[1]
    stages = len(coefficients.alpha)

    def square(rows):
        matrix = numpy.zeros((stages, stages))
        for i, row in enumerate(rows):
            matrix[i, :len(row)] = row
        return backend.asarray(matrix, dtype=dtype)

    def vector(row):
        return backend.asarray(numpy.array(row), dtype=dtype)
    matrices = _Matrices(square(coefficients.a), square(coefficients.c), vector(coefficients.m),
                         vector(coefficients.m_error))
    _matrices_cache[key] = (coefficients, matrices)
    return matrices


def _untraced_step(rhs, method, y, t, h, linearisation):
    """`rosenbrock_step` on untraced arrays: stage i is row i of one (s, n) array V, and
    y + h sum_j a_ij v_j is y + h (a_i . V). Returns `_TRACED` if f's value is traced."""
    xp, coefficients = backend.xp, method.floats
    gamma, shape = coefficients.gamma, y.shape
    jacobian, coupling = linearisation.jacobian, linearisation.coupling
    size = jacobian.shape[0]
    factors = ops.lu_factor(xp.eye(size, dtype=jacobian.dtype) / gamma - h * jacobian)
    if factors.singular:
        return None
    matrices = _matrices(coefficients, y.dtype)
    flat = y.ndim != 1
    y_flat = y.reshape(-1) if flat else y
    f_t = None
    if not linearisation.autonomous:
        f_t = linearisation.time_derivative.reshape(-1)
    stages = xp.empty((len(coefficients.alpha), y.size), dtype=y.dtype)
    for i, alpha_i in enumerate(coefficients.alpha):
        if i == 0:
            right_side = linearisation.value
        else:
            y_stage = y_flat + h * (matrices.a[i, :i] @ stages[:i])
            right_side = rhs(y_stage.reshape(shape) if flat else y_stage, t + alpha_i * h)
            if isbox(right_side):
                return _TRACED
        if flat:
            right_side = right_side.reshape(-1)
        if i:
            right_side = right_side + matrices.c[i, :i] @ stages[:i]
        if f_t is not None and coefficients.gamma_sums[i] != 0.0:
            right_side = right_side + (coefficients.gamma_sums[i] * h) * f_t
        stages[i] = _solve(factors, right_side, size, gamma, h, coupling)
    y_next = y_flat + h * (matrices.m @ stages)
    error = h * (matrices.m_error @ stages)
    if flat:
        return (y_next.reshape(shape), error.reshape(shape),
                [stage.reshape(shape) for stage in stages])
    return y_next, error, list(stages)


def _solve(factors, right_side, size, gamma, h, coupling):
    """M^-1 r for an untraced flat r (with quadratures: M's block form, see the docstring)."""
    if coupling is None:
        return backend.asarray(factors.solve(backend.to_numpy(right_side), False))
    implicit = backend.asarray(factors.solve(backend.to_numpy(right_side[:size]), False))
    quadrature = gamma * (right_side[size:] + h * coupling(implicit))
    return backend.xp.concatenate([implicit, quadrature])
