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
"""
from autograd.tracer import getval

from minode import backend, ops
from minode.stepping import linear_combination


def rosenbrock_step(rhs, method, y, t, h, linearisation):
    """Advance ``y`` from ``t`` to ``t + h`` with one step of the Rosenbrock ``method``.

    ``linearisation`` (a `minode.jacobian.Linearisation`) holds f, J and f_t at (y, t); it
    does not depend on h, so a rejected step is retried with it. Returns
    ``(y_next, error, stages)``, or None when M = I / gamma - h J is singular or not finite at
    this h (a failed trial: retry with a smaller step).
    """
    coefficients = method.floats
    solve = _stage_solver(linearisation, h, coefficients.gamma)
    if solve is None:
        return None
    stages = []
    for i in range(len(coefficients.alpha)):
        if i == 0:
            f_i = linearisation.value
        else:
            f_i = rhs(linear_combination(y, h, coefficients.a[i], stages),
                      t + coefficients.alpha[i] * h)
        right_side = linear_combination(f_i, 1.0, coefficients.c[i], stages)
        if coefficients.gamma_sums[i] != 0.0:
            right_side = right_side + (coefficients.gamma_sums[i] * h) \
                * linearisation.time_derivative
        stages.append(_in_shape(solve(_flat(right_side)), y.shape))
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


def _in_shape(x, shape):
    return x if x.shape == shape else ops.reshape(x, shape)
