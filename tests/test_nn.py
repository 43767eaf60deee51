"""Layers: output shapes, initialisation, gradients against central differences, errors."""
import numpy
import pytest
from numpy.testing import assert_allclose

from minode import nn, ops
from minode.gradcheck import check_grads


def rng(seed=0):
    return numpy.random.default_rng(seed)


def normal(*shape, seed=1):
    return rng(seed).standard_normal(shape)


def weighted_sum(output, seed=2):
    """A scalar that depends on every output entry differently."""
    return ops.sum(ops.multiply(output, normal(*output.shape, seed=seed)))


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


LAYERS = {
    # name: (params, apply(params, x), x, expected output shape)
    "linear": (nn.init_linear(rng(), 3, 2), nn.linear, normal(4, 3), (4, 2)),
    "linear-batched": (nn.init_linear(rng(), 3, 2), nn.linear, normal(2, 4, 3), (2, 4, 2)),
    "mlp": (nn.init_mlp(rng(), [3, 5, 4, 2]), nn.mlp, normal(4, 3), (4, 2)),
    "conv2d-stride2-pad1": (nn.init_conv2d(rng(), 2, 3, 3),
                            lambda p, x: nn.conv2d(p, x, stride=2, padding=1),
                            normal(2, 2, 5, 5), (2, 3, 3, 3)),
    "concat_conv2d": (nn.init_concat_conv2d(rng(), 2, 3, 3),
                      lambda p, x: nn.concat_conv2d(p, 0.7, x, padding=1),
                      normal(1, 2, 4, 3), (1, 3, 4, 3)),
    "group_norm": ({"scale": normal(4, seed=3), "shift": normal(4, seed=4)},
                   lambda p, x: nn.group_norm(p, x, 2), normal(2, 4, 3, 3), (2, 4, 3, 3)),
    "group_norm-2d": ({"scale": normal(6, seed=3), "shift": normal(6, seed=4)},
                      lambda p, x: nn.group_norm(p, x, 3), normal(3, 6), (3, 6)),
    "gru_cell": (nn.init_gru_cell(rng(), 3, 4), lambda p, xh: nn.gru_cell(p, *xh),
                 (normal(2, 3), normal(2, 4, seed=5)), (2, 4)),
    "gru-last": (nn.init_gru_cell(rng(), 3, 4), lambda p, xs: nn.gru(p, xs, numpy.zeros((2, 4))),
                 normal(5, 2, 3), (2, 4)),
    "gru-all": (nn.init_gru_cell(rng(), 3, 4),
                lambda p, xs: nn.gru(p, xs, numpy.zeros((2, 4)), return_all=True),
                normal(5, 2, 3), (5, 2, 4)),
    "conv_ode_func": (nn.init_conv_ode_func(rng(), 4),
                      lambda p, y: nn.conv_ode_func(y, 0.3, p, groups=2),
                      normal(2, 4, 3, 3), (2, 4, 3, 3)),
    "conv_ode_func-no-time": (nn.init_conv_ode_func(rng(), 4, time_channel=False),
                              lambda p, y: nn.conv_ode_func(y, None, p, groups=2),
                              normal(2, 4, 3, 3), (2, 4, 3, 3)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_output_shape(name):
    params, apply, x, shape = LAYERS[name]
    assert apply(params, x).shape == shape


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradient_matches_finite_differences(name):
    params, apply, x, _ = LAYERS[name]
    check_grads(lambda params, x: weighted_sum(apply(params, x)), params, x)


def test_conv_ode_func_gradient_wrt_time_matches_finite_differences():
    params, y = nn.init_conv_ode_func(rng(), 2), normal(1, 2, 3, 3)
    check_grads(lambda t: weighted_sum(nn.conv_ode_func(y, t, params)), numpy.array(0.4))


def test_conv_block_without_time_channel_is_the_timed_block_at_t_zero_minus_its_time_weights():
    """At t = 0 the time channel is all zeros (and so is the padding around it), so dropping
    the convolutions' time-input weights w[:, 0] leaves the output unchanged."""
    timed = nn.init_conv_ode_func(rng(), 4)
    untimed = nn.init_conv_ode_func(rng(), 4, time_channel=False)
    assert untimed["conv1"]["w"].shape == (4, 4, 3, 3) and timed["conv1"]["w"].shape == (4, 5, 3, 3)
    for conv in ("conv1", "conv2"):
        untimed[conv] = {"w": timed[conv]["w"][:, 1:], "b": timed[conv]["b"]}
    y = normal(2, 4, 3, 3)
    assert_allclose(nn.conv_ode_func(y, None, untimed), nn.conv_ode_func(y, 0.0, timed),
                    rtol=1e-12, atol=1e-12)
    assert not numpy.allclose(nn.conv_ode_func(y, 0.5, timed), nn.conv_ode_func(y, 0.0, timed))


def test_init_follows_pytorch_bounds_and_dtype():
    linear = nn.init_linear(rng(), 16, 300, dtype="float32")
    assert linear["w"].shape == (300, 16) and linear["w"].dtype == numpy.float32
    assert abs(linear["w"]).max() <= 0.25 and abs(linear["w"]).max() > 0.24
    conv = nn.init_conv2d(rng(), 65, 64, 3)
    assert conv["w"].dtype == numpy.float64 and abs(conv["w"]).max() <= 1 / numpy.sqrt(585)
    gru = nn.init_gru_cell(rng(), 3, 25)
    assert {k: v.shape for k, v in gru.items()} == {
        "w_ih": (75, 3), "w_hh": (75, 25), "b_ih": (75,), "b_hh": (75,)}
    assert abs(gru["w_hh"]).max() <= 0.2
    norm = nn.init_group_norm(rng(), 5)
    assert_allclose(norm["scale"], 1) and assert_allclose(norm["shift"], 0)


def test_gru_cell_follows_pytorch_equations():
    params, x, h = nn.init_gru_cell(rng(), 3, 4), normal(2, 3), normal(2, 4, seed=5)
    gi = x @ params["w_ih"].T + params["b_ih"]
    gh = h @ params["w_hh"].T + params["b_hh"]
    r, z = sigmoid(gi[:, :4] + gh[:, :4]), sigmoid(gi[:, 4:8] + gh[:, 4:8])
    n = numpy.tanh(gi[:, 8:] + r * gh[:, 8:])
    assert_allclose(nn.gru_cell(params, x, h), (1 - z) * n + z * h, rtol=1e-12)


def test_gru_over_a_sequence_equals_repeated_cells():
    params, xs, h0 = nn.init_gru_cell(rng(), 3, 4), normal(5, 2, 3), normal(2, 4, seed=5)
    states, h = nn.gru(params, xs, h0, return_all=True), h0
    for step in range(5):
        h = nn.gru_cell(params, xs[step], h)
        assert_allclose(states[step], h, rtol=1e-12)
    assert_allclose(nn.gru(params, xs, h0), h, rtol=1e-12)


def test_mlp_applies_no_activation_after_the_last_layer():
    params, x = nn.init_mlp(rng(), [3, 2]), 10 * normal(4, 3)
    assert_allclose(nn.mlp(params, x), nn.linear(params[0], x))


def test_count_params():
    assert nn.count_params(nn.init_mlp(rng(), [3, 5, 2])) == 3 * 5 + 5 + 5 * 2 + 2
    assert nn.count_params(nn.init_conv_ode_func(rng(), 64)) == 2 * (64 * 65 * 9 + 64) + 6 * 64
    assert (nn.count_params(nn.init_conv_ode_func(rng(), 64, time_channel=False))
            == 2 * (64 * 64 * 9 + 64) + 6 * 64)


def test_flatten_round_trips_layer_params():
    params = nn.init_mlp(rng(), [3, 4, 2])
    vector, unflatten = nn.flatten(params)
    assert vector.shape == (nn.count_params(params),)
    assert_allclose(nn.flatten(unflatten(vector * 2))[0], vector * 2)


@pytest.mark.parametrize("call, message", [
    (lambda: nn.linear(nn.init_linear(rng(), 3, 2), normal(4, 5)), "linear: x must have 3"),
    (lambda: nn.conv2d(nn.init_conv2d(rng(), 3, 2, 3), normal(1, 4, 5, 5)),
     r"conv2d: x must be \(N, 3, H, W\)"),
    (lambda: nn.concat_conv2d(nn.init_concat_conv2d(rng(), 3, 2, 3), 0.0, normal(1, 4, 5, 5)),
     r"concat_conv2d: x must be \(N, 3, H, W\)"),
    (lambda: nn.group_norm(nn.init_group_norm(rng(), 4), normal(2, 3, 5), 1),
     r"group_norm: x must be \(N, 4"),
    (lambda: nn.gru_cell(nn.init_gru_cell(rng(), 3, 4), normal(2, 5), normal(2, 4)),
     "gru: x must have 3 features"),
    (lambda: nn.gru_cell(nn.init_gru_cell(rng(), 3, 4), normal(2, 3), normal(3, 4)),
     r"gru: h must be \(B, H\) = \(2, 4\)"),
    (lambda: nn.gru(nn.init_gru_cell(rng(), 3, 4), normal(2, 3), normal(2, 4)),
     r"gru: xs must be \(T, B, n_in\)"),
    (lambda: nn.init_mlp(rng(), [3]), "sizes"),
])
def test_wrong_shapes_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: nn.init_mlp(rng(), [0, 3]), r"sizes\[0\] must be a positive integer, got 0"),
    (lambda: nn.init_mlp(rng(), [2, 0, 2]), r"sizes\[1\] must be a positive integer, got 0"),
    (lambda: nn.init_mlp(rng(), [2, 2.5]), r"sizes\[1\] must be a positive integer, got 2\.5"),
    (lambda: nn.init_mlp(rng(), 3), r"sizes must be a list \[n_in, hidden..., n_out\]"),
    (lambda: nn.init_linear(rng(), 2, -1), "n_out must be a positive integer, got -1"),
    (lambda: nn.init_conv2d(rng(), 3, 2, 0), "kernel_size must be a positive integer"),
    (lambda: nn.init_group_norm(rng(), 0), "num_channels must be a positive integer"),
    (lambda: nn.init_gru_cell(rng(), 3, 0), "n_hidden must be a positive integer"),
])
def test_sizes_that_are_not_positive_integers_raise_value_error_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_an_rng_that_is_not_a_generator_raises_type_error_naming_rng():
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator, e\.g\. "
                                        r"numpy.random.default_rng\(0\), got int"):
        nn.init_mlp(0, [2, 3])
