"""The backend switch: every primitive, and the VJP of its VJP, computes with the active ``xp``
(checked on a strict, CuPy-like fake backend), traced arrays route their operators to minode,
errors are clear."""
import autograd.numpy as anp
import numpy
import pytest
from autograd import grad
from autograd.extend import defvjp, primitive
from numpy.testing import assert_allclose

import strict_backend as strict
from minode import backend, nn, ops
from minode.ops.box import XpArrayBox
from op_cases import CASES, host, minode_result, minode_second_order, result_on, second_order_on


def assert_same_results(strict_arrays, numpy_arrays):
    for strict_array, numpy_array in zip(strict_arrays, numpy_arrays):
        assert type(strict_array) is strict.StrictArray
        assert_allclose(host(strict_array), numpy_array, rtol=1e-12, atol=1e-14)


def test_strict_backend_refuses_numpy_calls_and_host_arrays(strict_backend):
    x = strict_backend.asarray(numpy.ones((2, 3)))
    with pytest.raises(TypeError, match="numpy.exp was called on a StrictArray"):
        numpy.exp(x)
    with pytest.raises(TypeError, match="numpy.concatenate was called"):
        numpy.concatenate([x, x])
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        x + numpy.ones((2, 3))
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        strict_backend.add(x, numpy.ones(3))
    with pytest.raises(TypeError, match="numpy.tanh was called"):  # an autograd.numpy VJP
        grad(lambda x: anp.sum(anp.tanh(x)))(x)
    assert type(x * 2.0 + x[0] + numpy.float64(1.0) * 0 + x.sum()) is strict.StrictArray


@primitive
def _double_with_a_stray_numpy_call(x):
    return backend.xp.multiply(x, 2.0)


defvjp(_double_with_a_stray_numpy_call,
       lambda result, x: lambda grad_out: numpy.full(x.shape, 2.0) * grad_out)


def test_a_vjp_with_a_stray_numpy_call_fails_on_the_strict_backend(strict_backend):
    x = backend.asarray(numpy.ones(3))
    loss = lambda x: ops.sum(_double_with_a_stray_numpy_call(x))  # noqa: E731
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        grad(loss)(x)


@pytest.mark.parametrize("c", CASES, ids=str)
def test_every_primitive_computes_with_the_active_xp(c, strict_backend):
    expected_output, expected_grads = result_on("numpy", c)
    output, grads = minode_result(c)
    assert_same_results([output, *grads], [expected_output, *expected_grads])


@pytest.mark.parametrize("c", CASES, ids=str)
def test_every_primitive_is_twice_differentiable_with_the_active_xp(c, strict_backend):
    # On NumPy, autograd's ArrayBox traces a stray numpy ufunc in a VJP; here it would fail.
    expected = second_order_on("numpy", c)
    assert_same_results(minode_second_order(c), expected)


def operator_heavy(x, y, seen):
    """Arithmetic written with operators, indexing and methods, not with ops.* calls."""
    seen.append(type(x))
    z = (x * y + 2.0 - y / 3.0) ** 2 @ x.T
    z = -z[0] + abs(z[1:]).sum(axis=0) + z.mean(axis=0, keepdims=True).reshape(-1)
    return (z * z).sum() + (1.0 / (1.5 + y ** 2)).sum() + x[:, 1].ravel().sum()


def test_operators_on_traced_strict_arrays_route_to_minode_primitives(strict_backend):
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    seen = []
    expected = grad(operator_heavy, (0, 1))(x, y, seen)
    got = grad(operator_heavy, (0, 1))(backend.asarray(x), backend.asarray(y), seen)
    assert seen[-1] is XpArrayBox
    assert_same_results(got, expected)


def mlp_loss(params, x):
    return ops.mean_squared_error(nn.mlp(params, x), ops.sum(x, axis=1, keepdims=True))


def conv_block_loss(params, x):
    out = nn.group_norm(params["norm"], nn.conv2d(params["conv"], x, 2, 1), 2)
    return ops.sum(ops.square(ops.relu(out)))


@pytest.mark.parametrize("loss, init, x_shape", [
    (mlp_loss, lambda rng: nn.init_mlp(rng, [3, 8, 1]), (5, 3)),
    (conv_block_loss, lambda rng: {"conv": nn.init_conv2d(rng, 3, 4, 3),
                                   "norm": nn.init_group_norm(rng, 4)}, (2, 3, 5, 5)),
], ids=["mlp", "conv-group_norm"])
def test_model_gradients_on_the_strict_backend_equal_numpy(loss, init, x_shape, strict_backend):
    x = numpy.random.default_rng(1).standard_normal(x_shape)
    backend.set_backend("numpy")
    params = init(numpy.random.default_rng(2))
    expected = nn.flatten(grad(loss, (0, 1))(params, x))[0]
    backend.set_backend("strict")
    params = init(numpy.random.default_rng(2))
    got = grad(loss, (0, 1))(params, backend.asarray(x))
    assert all(type(leaf) is strict.StrictArray for leaf in nn.tree_leaves(got))
    assert_allclose(host(nn.flatten(got)[0]), expected, rtol=1e-12)


def test_set_backend_cupy_without_a_gpu_raises_a_clear_runtime_error():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        pytest.skip("CuPy and a GPU are present here")
    except Exception:  # ImportError, or CuPy's CUDA errors
        pass
    with pytest.raises(RuntimeError, match="backend 'cupy' needs"):
        backend.set_backend("cupy")
    assert backend.name == "numpy"


def test_unknown_backend_raises_value_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        backend.set_backend("jax")


@pytest.mark.parametrize("grad_mode", ["adjoint", "backprop"])
def test_conv_ode_gradient_on_the_strict_backend_equals_numpy(grad_mode, strict_backend):
    from test_conv_ode import loss, make_problem
    backend.set_backend("numpy")
    y0, params = make_problem()
    expected = nn.flatten(grad(loss, (0, 1))(y0, params, grad_mode))[0]
    backend.set_backend("strict")
    got = grad(loss, (0, 1))(backend.asarray(y0), nn.tree_map(backend.asarray, params), grad_mode)
    assert all(type(leaf) is strict.StrictArray for leaf in nn.tree_leaves(got))
    assert_allclose(host(nn.flatten(got)[0]), expected, rtol=1e-10, atol=1e-13)
