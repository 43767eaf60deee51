"""The primitive and conv ODE gradient checks on CuPy; skipped where CuPy or a GPU is missing."""
import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e .[gpu])")

from autograd import grad  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from minode import backend, nn, ops  # noqa: E402
from minode.gradcheck import check_grads  # noqa: E402
from minode.tree import tree_map  # noqa: E402
from op_cases import (CASES, cotangent_for, host, loss_of, max_relative_difference,  # noqa: E402
                      result_on, second_order_on)


def _gpu_count():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CuPy's CUDA errors when there is no driver or device
        return 0


pytestmark = pytest.mark.skipif(_gpu_count() == 0, reason="CuPy is installed but no CUDA GPU "
                                "is available")


@pytest.fixture
def on_cupy():
    previous = backend.set_backend("cupy")
    try:
        yield
    finally:
        backend.set_backend(previous)


@pytest.mark.parametrize("c", CASES, ids=str)
def test_primitive_on_cupy_equals_numpy(c):
    expected_output, expected_grads = result_on("numpy", c)
    output, grads = result_on("cupy", c)
    assert max_relative_difference([output, *grads], [expected_output, *expected_grads]) < 1e-9


@pytest.mark.parametrize("c", CASES, ids=str)
def test_primitive_second_derivatives_on_cupy_equal_numpy(c):
    assert max_relative_difference(second_order_on("cupy", c), second_order_on("numpy", c)) < 1e-9


@pytest.mark.parametrize("c", CASES, ids=str)
def test_primitive_vjp_on_cupy_matches_finite_differences(c, on_cupy):
    args = [backend.asarray(x) if hasattr(x, "dtype") else x for x in c.inputs]
    output = c.function(*args)
    assert isinstance(output, cupy.ndarray)
    loss = loss_of(c.function, ops, args, c.argnums, backend.asarray(cotangent_for(output.shape)))
    check_grads(loss, *[args[i] for i in c.argnums])


def test_conv_ode_adjoint_gradients_on_cupy_match_finite_differences(on_cupy):
    from test_conv_ode import loss, make_problem
    y0, params = make_problem()
    check_grads(loss, backend.asarray(y0), tree_map(backend.asarray, params),
                rtol=1e-5, atol=1e-7)


def test_conv_ode_backprop_gradient_on_cupy_equals_numpy():
    from test_conv_ode import loss, make_problem
    y0, params = make_problem()
    expected = host(nn.flatten(grad(loss, (0, 1))(y0, params, "backprop"))[0])
    previous = backend.set_backend("cupy")
    try:
        got = grad(loss, (0, 1))(backend.asarray(y0), tree_map(backend.asarray, params),
                                 "backprop")
        assert_allclose(host(nn.flatten(got)[0]), expected, rtol=1e-9, atol=1e-12)
    finally:
        backend.set_backend(previous)
