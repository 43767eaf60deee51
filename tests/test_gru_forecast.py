"""minode.gru_forecast: the GRU baseline's roll-outs (shapes, what they read and what they never
read), its losses against a hand-run GRU, its gradient through its own predictions, and a
multi-step loss that decreases on a tiny forecasting problem."""
import autograd
import numpy
import pytest

from minode import backend, gru_forecast, nn, optim
from minode.gradcheck import check_grads


def series(rng, batch=3, length=6, features=2):
    """Rows at their own increasing irregular times, with random values."""
    times = numpy.cumsum(rng.uniform(0.1, 0.4, size=(batch, length)), axis=1)
    return times, rng.normal(size=(batch, length, features))


def test_rollout_predicts_every_point_after_the_first():
    rng = numpy.random.default_rng(0)
    params = gru_forecast.init(rng, n_features=2, units=4)
    times, xs = series(rng)
    for n_read in (1, 3, 6):
        assert gru_forecast.rollout(params, times, xs, n_read).shape == (5, 3, 2)


def test_teacher_forcing_is_the_gru_over_values_and_gaps():
    """With every point read, step i sees (x_i, t_{i+1} - t_i): the same as `nn.gru` over
    those inputs, read out by the linear layer."""
    rng = numpy.random.default_rng(1)
    params = gru_forecast.init(rng, units=4)
    times, xs = series(rng)
    inputs = numpy.concatenate([xs[:, :-1], numpy.diff(times, axis=1)[..., None]], axis=-1)
    states = nn.gru(params["gru"], numpy.swapaxes(inputs, 0, 1), numpy.zeros((3, 4)),
                    return_all=True)
    expected = nn.linear(params["out"], states)
    numpy.testing.assert_allclose(backend.to_numpy(gru_forecast.rollout(params, times, xs, 6)),
                                  backend.to_numpy(expected), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_read", [1, 2, 4])
def test_the_rollout_never_reads_the_values_after_n_read(n_read):
    """Masking: changing the unread values changes no prediction (while their loss terms do
    change); changing a read value changes the predictions after it."""
    rng = numpy.random.default_rng(2)
    params = gru_forecast.init(rng, units=4)
    times, xs = series(rng)
    reference = backend.to_numpy(gru_forecast.rollout(params, times, xs, n_read))
    unread = xs.copy()
    unread[:, n_read:] += 3.0
    numpy.testing.assert_array_equal(
        backend.to_numpy(gru_forecast.rollout(params, times, unread, n_read)), reference)
    assert (float(gru_forecast.rollout_nll(params, times, unread, n_read, 0.3))
            != float(gru_forecast.rollout_nll(params, times, xs, n_read, 0.3)))
    read = xs.copy()
    read[:, n_read - 1] += 0.5
    changed = backend.to_numpy(gru_forecast.rollout(params, times, read, n_read))
    numpy.testing.assert_array_equal(changed[:n_read - 1], reference[:n_read - 1])
    assert numpy.all(changed[n_read - 1:] != reference[n_read - 1:])


def test_past_n_read_each_step_reads_the_previous_prediction():
    """Reading the roll-out's own predictions as if they were data gives the same roll-out."""
    rng = numpy.random.default_rng(3)
    params = gru_forecast.init(rng, units=4)
    times, xs = series(rng)
    free = backend.to_numpy(gru_forecast.rollout(params, times, xs, 2))
    fed = xs.copy()
    fed[:, 2:] = numpy.swapaxes(free[1:], 0, 1)   # the predictions of x_2 .. x_5
    numpy.testing.assert_allclose(backend.to_numpy(gru_forecast.rollout(params, times, fed, 5)),
                                  free, rtol=1e-12, atol=1e-14)


def test_predict_is_the_rollout_after_the_observations():
    rng = numpy.random.default_rng(4)
    params = gru_forecast.init(rng, units=4)
    times, xs = series(rng, length=7)
    forecast = gru_forecast.predict(params, times[:, :3], xs[:, :3], times[:, 3:])
    assert forecast.shape == (3, 4, 2)
    expected = backend.to_numpy(gru_forecast.rollout(params, times, xs, 3))[2:]
    numpy.testing.assert_allclose(forecast, numpy.swapaxes(expected, 0, 1), rtol=1e-12)


def test_rollout_nll_matches_the_gaussian_formula():
    rng = numpy.random.default_rng(5)
    params = gru_forecast.init(rng, units=3)
    times, xs = series(rng)
    predicted = numpy.swapaxes(backend.to_numpy(gru_forecast.rollout(params, times, xs, 2)), 0, 1)
    std = 0.3
    expected = numpy.sum(0.5 * numpy.log(2 * numpy.pi * std ** 2)
                         + 0.5 * (xs[:, 1:] - predicted) ** 2 / std ** 2) / 3
    assert float(gru_forecast.rollout_nll(params, times, xs, 2, std)) == pytest.approx(
        expected, rel=1e-12)


@pytest.mark.parametrize("n_read", [2, 5])
def test_gradient_through_its_own_predictions_matches_central_differences(n_read):
    rng = numpy.random.default_rng(6)
    params = gru_forecast.init(rng, units=3)
    times, xs = series(rng, batch=2, length=5)
    check_grads(lambda p: gru_forecast.rollout_nll(p, times, xs, n_read, 0.3) * 0.09, params,
                rtol=1e-6, atol=1e-8)


def test_a_multi_step_loss_decreases_on_a_tiny_forecasting_problem():
    """Circles at their own irregular times: Adam on the roll-out loss (read 4 points,
    forecast 8) must cut it well below its start."""
    rng = numpy.random.default_rng(7)
    times = numpy.cumsum(rng.uniform(0.2, 0.4, size=(16, 12)), axis=1)
    phase = rng.uniform(0, 2 * numpy.pi, size=(16, 1))
    xs = numpy.stack([numpy.cos(times + phase), numpy.sin(times + phase)], axis=-1)
    params = gru_forecast.init(rng, units=8)
    optimizer = optim.Adam(lr=0.03)
    state = optimizer.init(params)
    loss_and_grad = autograd.value_and_grad(
        lambda p: gru_forecast.rollout_nll(p, times, xs, 4, 0.3))
    first, _ = loss_and_grad(params)
    for _ in range(60):
        loss, grads = loss_and_grad(params)
        params, state = optimizer.update(params, grads, state)
    assert float(loss_and_grad(params)[0]) < 0.3 * float(first)


@pytest.mark.parametrize("times_shape, xs_shape, n_read, match", [
    ((3, 6), (3, 5, 2), 2, "times must be"), ((3,), (3, 6, 2), 2, "times must be"),
    ((3, 1), (3, 1, 2), 1, "at least 2 points"), ((3, 6), (3, 6, 2), 0, "n_read must be"),
    ((3, 6), (3, 6, 2), 7, "n_read must be"), ((3, 6), (3, 6, 2), 2.0, "n_read must be"),
    ((3, 6), (3, 6, 2), True, "n_read must be")])
def test_bad_series_are_refused_naming_the_argument(times_shape, xs_shape, n_read, match):
    params = gru_forecast.init(numpy.random.default_rng(8), units=3)
    with pytest.raises(ValueError, match=match):
        gru_forecast.rollout(params, numpy.zeros(times_shape), numpy.zeros(xs_shape), n_read)


def test_predict_refuses_future_times_of_another_batch():
    params = gru_forecast.init(numpy.random.default_rng(9), units=3)
    with pytest.raises(ValueError, match="times must be"):
        gru_forecast.predict(params, numpy.ones((2, 3)), numpy.zeros((2, 3, 2)),
                             numpy.ones((3, 4)))


def test_times_that_go_back_are_refused_not_read_as_negative_gaps():
    rng = numpy.random.default_rng(10)
    params = gru_forecast.init(rng, units=3)
    times, xs = series(rng)
    with pytest.raises(ValueError, match=r"times must not decrease along a row.*row 0"):
        gru_forecast.rollout(params, times[:, ::-1], xs, 3)
    with pytest.raises(ValueError, match=r"times must not decrease along a row.*row 1"):
        gru_forecast.predict(params, times[:, :3], xs[:, :3], times[:, 3:] - [[0], [5], [0]])
    nan_times = times.copy()
    nan_times[2, 4] = numpy.nan
    with pytest.raises(ValueError, match="times must be finite"):
        gru_forecast.rollout(params, nan_times, xs, 3)


@pytest.mark.parametrize("predicted_shape", [(5, 3, 1), (1, 3, 2), (5, 1, 2)])
def test_predictions_of_another_shape_are_refused_not_broadcast(predicted_shape):
    # one feature, one time or one series broadcast against the (5, 3, 2) targets would give
    # a finite likelihood of other predictions than the caller's
    targets = numpy.random.default_rng(11).normal(size=(3, 5, 2))
    with pytest.raises(ValueError, match=r"predicted must have shape \(T, B, F\) = \(5, 3, 2\)"):
        gru_forecast.negative_log_likelihood(targets, numpy.zeros(predicted_shape), 0.3)


@pytest.mark.parametrize("likelihood_std", [0.0, -0.3, float("nan")])
def test_a_likelihood_std_that_is_not_positive_is_refused_not_returned_as_nan(likelihood_std):
    rng = numpy.random.default_rng(12)
    params = gru_forecast.init(rng, units=3)
    times, xs = series(rng)
    with pytest.raises(ValueError, match="likelihood_std must be a positive finite number"):
        gru_forecast.rollout_nll(params, times, xs, 3, likelihood_std)


def test_series_given_as_nested_lists_roll_out_like_arrays():
    rng = numpy.random.default_rng(13)
    params = gru_forecast.init(rng, units=3)
    times, xs = series(rng)
    numpy.testing.assert_array_equal(
        backend.to_numpy(gru_forecast.rollout(params, times.tolist(), xs.tolist(), 3)),
        backend.to_numpy(gru_forecast.rollout(params, times, xs, 3)))


@pytest.mark.parametrize("t_shape, x_shape, match", [
    ((2, 3), (2, 2, 2), r"x_observed must be \(B, n, F\) = \(2, 3, F\).*\(2, 2, 2\)"),
    ((2, 3), (2, 3), r"x_observed must be \(B, n, F\) = \(2, 3, F\).*\(2, 3\)"),
    ((3,), (3, 2), r"t_observed must be \(B, n\).*\(3,\)")])
def test_predict_names_its_own_arguments_in_a_shape_error(t_shape, x_shape, match):
    params = gru_forecast.init(numpy.random.default_rng(14), units=3)
    t_observed = numpy.broadcast_to(numpy.arange(t_shape[-1], dtype=float), t_shape)
    with pytest.raises(ValueError, match=match):
        gru_forecast.predict(params, t_observed, numpy.zeros(x_shape), numpy.full((2, 2), 9.0))
