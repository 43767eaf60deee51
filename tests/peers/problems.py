"""The test problems of torchdiffeq's and diffrax's suites, re-expressed for minode.

Each vector field has minode's signature ``func(y, t, params)``; a scalar peer state becomes
shape (1,), since minode's states have at least one dimension. Random draws use
``numpy.random.default_rng`` with the peer's seed: torch's and JAX's streams give other numbers,
so the matrices and weights differ from the peers' while their recipes (shapes, scales,
structure) are the same.

torchdiffeq, ``tests/problems.py`` (`torchdiffeq_problem`): on t in [1, 8],

    constant  dy/dt = a + (y - (a t + b))^5     y = a t + b, a = 0.2, b = 3
    sine      dy/dt = 2 y / t + t^4 sin 2t - t^2 + 4 t^3   (closed form in `_sine_exact`)
    linear    dy/dt = A y, A = U - U^T, U ~ 0.1 N(0, 1) (10 x 10)   y = expm(A t) 1
    exp       dy/dt = -0.1 exp(-0.1 t)          y = exp(-0.1 t)

plus the MLP fields of ``tests/odeint_tests.py`` / ``norm_tests.py`` (`neural_field`) and the
cubic rotation of ``tests/gradient_tests.py`` (`cubic_rotation_problem`).

diffrax, ``test/test_integrate.py`` and ``test/test_adjoint.py``: the 10 x 10 linear system of
``test_ode_order`` (`order_problem`), the two-parameter linear field of ``test_against``
(`against_field`) and the 1-8-8-1 ReLU MLP of ``test_closure_*`` / ``test_backprop_ts``
(`relu_mlp_field`).
"""
import re
from typing import Callable, NamedTuple

import numpy
import pytest
import scipy.linalg

from minode import nn, ops

TORCHDIFFEQ_T_SPAN = (1.0, 8.0)


class TorchdiffeqProblem(NamedTuple):
    """One problem of torchdiffeq's ``construct_problem``: ``ys`` is the exact solution at ``t``
    (flipped with ``t`` when reversed) and ``y0 = ys[0]``."""

    func: Callable
    params: object
    y0: numpy.ndarray
    t: numpy.ndarray
    ys: numpy.ndarray


def _constant_field(y, t, params):
    return params["a"] + (y - (params["a"] * t + params["b"])) ** 5


def _sine_field(y, t, params):
    return 2 * y / t + t ** 4 * ops.sin(2 * t) - t ** 2 + 4 * t ** 3


def _sine_exact(t):
    return (-0.5 * t ** 4 * numpy.cos(2 * t) + 0.5 * t ** 3 * numpy.sin(2 * t)
            + 0.25 * t ** 2 * numpy.cos(2 * t) - t ** 3 + 2 * t ** 4
            + (numpy.pi - 0.25) * t ** 2)


def _linear_field(y, t, params):
    return ops.matmul(params["A"], y)


def _exp_field(y, t, params):
    # dy/dt does not depend on y; reshaped to y's shape (1,), as minode requires.
    return ops.reshape(-0.1 * ops.exp(-0.1 * t), y.shape)


def torchdiffeq_linear_matrix(dim=10, seed=0):
    """A = U - U^T with U ~ 0.1 N(0, 1): torchdiffeq's LinearODE (2U - (U + U^T)), skew."""
    u = numpy.random.default_rng(seed).normal(size=(dim, dim)) * 0.1
    return u - u.T


def _linear_exact(t, matrix):
    ones = numpy.ones(matrix.shape[0])
    return numpy.stack([scipy.linalg.expm(matrix * t_i) @ ones for t_i in t])


def _problem_pieces(name, dtype):
    """(func, params, exact) for one of torchdiffeq's four problems; exact(t) has shape (T, D)."""
    if name == "constant":
        a, b = 0.2, 3.0
        params = {"a": numpy.array(a, dtype), "b": numpy.array(b, dtype)}
        return _constant_field, params, lambda t: (a * t + b)[:, None]
    if name == "sine":
        return _sine_field, None, lambda t: _sine_exact(t)[:, None]
    if name == "linear":
        matrix = torchdiffeq_linear_matrix()
        return (_linear_field, {"A": matrix.astype(dtype)},
                lambda t: _linear_exact(t, matrix))
    if name == "exp":
        return _exp_field, None, lambda t: numpy.exp(-0.1 * t)[:, None]
    raise ValueError(f"unknown torchdiffeq problem {name!r}")


TORCHDIFFEQ_PROBLEMS = ("constant", "sine", "linear", "exp")


def torchdiffeq_problem(name, dtype="float64", reverse=False, npts=10):
    """torchdiffeq's ``construct_problem(ode=name, dtype=dtype, reverse=reverse)``: ``npts``
    times evenly over [1, 8] (float64), decreasing when ``reverse``, the exact solution there in
    ``dtype``, and ``y0`` its first row."""
    func, params, exact = _problem_pieces(name, dtype)
    t = numpy.linspace(*TORCHDIFFEQ_T_SPAN, npts)
    ys = exact(t).astype(dtype)
    if reverse:
        t, ys = t[::-1].copy(), ys[::-1].copy()
    return TorchdiffeqProblem(func, params, ys[0].copy(), t, ys)


def neural_field(width, oscillate=False, frequency=20.0, dtype="float64"):
    """torchdiffeq's ``_NeuralF``: tanh(Linear(width, 2)(tanh(Linear(2, width)(y)))), times
    sin(frequency t) when ``oscillate`` (20 in odeint_tests.py, 2 in norm_tests.py). Returns
    (func, params); the weights are PyTorch's default initialisation, seed 0."""
    params = nn.init_mlp(numpy.random.default_rng(0), [2, width, 2], dtype)

    def func(y, t, params):
        out = ops.tanh(nn.mlp(params, y))
        return out * ops.sin(frequency * t) if oscillate else out
    return func, params


def cubic_rotation_problem():
    """gradient_tests.py ``TestCompareAdjointGradient.problem``: dy/dt = y^3 A from y0 = [[2, 0]]
    over 10 times in [0, 25]; ``params["unused"]`` is the Linear(2, 5) that func never reads."""
    def func(y, t, params):
        return ops.matmul(y ** 3, params["A"])
    params = {"A": numpy.array([[-0.1, 2.0], [-2.0, -0.1]]),
              "unused": nn.init_linear(numpy.random.default_rng(0), 2, 5)}
    return func, numpy.array([[2.0, 0.0]]), numpy.linspace(0.0, 25.0, 10), params


class OrderProblem(NamedTuple):
    """diffrax ``test_ode_order``: dy/dt = A y, A ~ 0.5 N(0, 1) (10 x 10), y0 ~ N(0, 1),
    t from 0 to 4; ``y_end`` = expm(4 A) y0."""

    matrix: numpy.ndarray
    y0: numpy.ndarray
    t_end: float
    y_end: numpy.ndarray


def order_problem(seed=5678):
    rng = numpy.random.default_rng(seed)
    matrix = rng.normal(size=(10, 10)) * 0.5
    y0 = rng.normal(size=10)
    t_end = 4.0
    return OrderProblem(matrix, y0, t_end, scipy.linalg.expm(t_end * matrix) @ y0)


def against_field(args_nondiff=None, field_nondiff=None):
    """diffrax ``test_against``'s ``_VectorField``: dy_a = args_diff y_a + args_nondiff y_b,
    dy_b = field_nondiff y_a + field_diff y_b. The two "nondiff" coefficients are integers (-1
    and 1 in diffrax); given here, they are closed over (diffrax's static partition), otherwise
    they are read from ``params`` (diffrax's ``allow_int=True`` run)."""
    def func(y, t, params):
        a_nondiff = params["args_nondiff"] if args_nondiff is None else args_nondiff
        f_nondiff = params["field_nondiff"] if field_nondiff is None else field_nondiff
        dya = params["args_diff"] * y[0] + a_nondiff * y[1]
        dyb = f_nondiff * y[0] + params["field_diff"] * y[1]
        return ops.stack([dya, dyb])
    return func


AGAINST_Y0 = numpy.array([0.9, 5.4])
AGAINST_FLOAT_PARAMS = {"args_diff": numpy.array(0.1), "field_diff": numpy.array(-0.1)}
AGAINST_INT_PARAMS = {"args_nondiff": numpy.array(-1), "field_nondiff": numpy.array(1)}
AGAINST_SPAN = (0.3, 9.5)


def relu_mlp_field(y, t, params):
    """diffrax's ``eqx.nn.MLP(1, 1, 8, 2)``: 1 -> 8 -> 8 -> 1 with ReLU, as a vector field."""
    return nn.mlp(params, y, activation=ops.relu)


def relu_mlp_params(seed=0):
    return nn.init_mlp(numpy.random.default_rng(seed), [1, 8, 8, 1])


def right_or_refused(call, arguments, check):
    """Run ``call()``: either it raises ValueError or TypeError whose message names one of
    ``arguments`` (a tuple of argument names: the input is refused), or it returns a result that
    passes ``check`` (the input is handled). A crash of any other kind, or a wrong result, fails
    the test."""
    try:
        result = call()
    except (ValueError, TypeError) as error:
        if not any(re.search(rf"\b{re.escape(name)}\b", str(error)) for name in arguments):
            pytest.fail(f"refused without naming any of {arguments}: "
                        f"{type(error).__name__}: {error}")
        return
    check(result)
