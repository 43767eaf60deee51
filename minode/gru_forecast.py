"""A GRU that forecasts an irregularly sampled series: the RNN baseline of Chen et al. 2018,
sec. 5.1 ("a recurrent neural net with 25 hidden units trained to minimize negative Gaussian
log-likelihood ... whose inputs were concatenated with the time difference to the next
observation").

At step i the GRU reads (x_i, t_{i+1} - t_i) and its linear read-out predicts x_{i+1}. A
roll-out reads the series' own values for its first ``n_read`` points and its own predictions
after them, so the one function `rollout` serves teacher forcing (``n_read`` = every point), a
multi-step forecasting loss (read a prefix, predict the rest from its own predictions, as the
RNN must at test time) and prediction past the last observation.

Series are batched as ``times`` (B, T), each row its own increasing times, and values
``xs`` (B, T, F), on the host; predictions come back as (T - 1, B, F) traced arrays.
"""
import numbers

import numpy

from minode import backend, nn, ops
from minode.checks import check_positive

__all__ = ["init", "rollout", "negative_log_likelihood", "rollout_nll", "predict"]


def init(rng, n_features=2, units=25):
    """Parameters: a GRU cell over (x, gap to the next time), ``n_features + 1`` inputs and
    ``units`` hidden units, and a linear read-out to the next x."""
    return {"gru": nn.init_gru_cell(rng, n_features + 1, units),
            "out": nn.init_linear(rng, units, n_features)}


def _check_series(times, xs, n_read):
    """Refuse shapes and read lengths that `rollout` cannot use, naming the argument."""
    times, xs = numpy.asarray(times), numpy.asarray(xs)
    if times.ndim != 2 or xs.ndim != 3 or xs.shape[:2] != times.shape:
        raise ValueError(f"times must be (B, T) and xs (B, T, F) with the same B and T, got "
                         f"shapes {times.shape} and {xs.shape}")
    if times.shape[1] < 2:
        raise ValueError(f"times must hold at least 2 points per row to predict one, got "
                         f"T = {times.shape[1]}")
    if not numpy.all(numpy.isfinite(times)):
        raise ValueError("times must be finite; drop or fill the missing times")
    back = numpy.argwhere(numpy.diff(times, axis=1) < 0)
    if back.size:
        row, i = back[0]
        raise ValueError(f"times must not decrease along a row (each row is one series, in time "
                         f"order), got {times[row, i]!r} then {times[row, i + 1]!r} in row "
                         f"{row}; sort each row with its values, and forecast only after the "
                         f"last observation")
    if (isinstance(n_read, bool) or not isinstance(n_read, numbers.Integral)
            or not 1 <= n_read <= times.shape[1]):
        raise ValueError(f"n_read must be an integer between 1 and T = {times.shape[1]} (the "
                         f"points read before the GRU runs on its own predictions), got "
                         f"{n_read!r}")


def rollout(params, times, xs, n_read):
    """The predictions of x at ``times[:, 1:]``, (T - 1, B, F).

    Step i reads (x_i, t_{i+1} - t_i), where x_i is the series' own value ``xs[:, i]`` for
    i < ``n_read`` and the GRU's prediction of it otherwise; the values ``xs[:, n_read:]`` are
    never read. Differentiable in ``params``.
    """
    _check_series(times, xs, n_read)
    gaps = numpy.diff(numpy.asarray(times, dtype=float), axis=1)[..., None]   # (B, T - 1, 1)
    read = numpy.asarray(xs)[:, :n_read]
    values = backend.asarray(numpy.ascontiguousarray(numpy.swapaxes(read, 0, 1)))
    h = backend.xp.zeros((gaps.shape[0], params["gru"]["w_hh"].shape[1]))
    predictions = []
    for i in range(gaps.shape[1]):
        x = values[i] if i < n_read else predictions[-1]
        step_input = ops.concatenate([x, backend.asarray(gaps[:, i])], axis=1)
        h = nn.gru_cell(params["gru"], step_input, h)
        predictions.append(nn.linear(params["out"], h))
    return ops.stack(predictions)


def negative_log_likelihood(targets, predicted, likelihood_std):
    """-sum log N(targets; predicted, s^2) over all points, divided by the number of series.

    ``targets`` (B, T, F) on the host, ``predicted`` (T, B, F)."""
    check_positive("likelihood_std", likelihood_std)
    targets = backend.asarray(numpy.ascontiguousarray(numpy.swapaxes(targets, 0, 1)))
    if tuple(predicted.shape) != tuple(targets.shape):
        raise ValueError(f"predicted must have shape (T, B, F) = {tuple(targets.shape)}, the "
                         f"targets' (B, T, F) with T and B swapped, got "
                         f"{tuple(predicted.shape)}")
    log_likelihood = ops.gaussian_log_likelihood(targets, predicted,
                                                 2 * numpy.log(likelihood_std))
    return ops.divide(ops.negative(ops.sum(log_likelihood)), targets.shape[1])


def rollout_nll(params, times, xs, n_read, likelihood_std):
    """The negative Gaussian log-likelihood of ``xs[:, 1:]`` under `rollout`'s predictions,
    per series: one-step predictions while the GRU reads the series (teacher forcing), then
    its own multi-step forecast. ``n_read`` = T is plain teacher forcing."""
    return negative_log_likelihood(numpy.asarray(xs)[:, 1:], rollout(params, times, xs, n_read),
                                   likelihood_std)


def predict(params, t_observed, x_observed, times):
    """Read the observations (B, n) / (B, n, F), then run free over each row's later
    ``times`` (B, m); returns the forecast (B, m, F) as a host array."""
    t_observed, times = numpy.asarray(t_observed), numpy.asarray(times)
    x_observed = numpy.asarray(x_observed)
    if t_observed.ndim != 2:
        raise ValueError(f"t_observed must be (B, n), one row of times per series, got shape "
                         f"{t_observed.shape}; for one series use t_observed[None]")
    if x_observed.ndim != 3 or x_observed.shape[:2] != t_observed.shape:
        raise ValueError(f"x_observed must be (B, n, F) = ({t_observed.shape[0]}, "
                         f"{t_observed.shape[1]}, F), the values at t_observed, got shape "
                         f"{x_observed.shape}")
    if times.ndim != 2 or times.shape[0] != t_observed.shape[0]:
        raise ValueError(f"times must be (B, m) with B = {t_observed.shape[0]} rows like "
                         f"t_observed, got shape {times.shape}")
    n = t_observed.shape[1]
    all_times = numpy.concatenate([t_observed, times], axis=1)
    padded = numpy.concatenate([x_observed, numpy.zeros(times.shape + x_observed.shape[2:])],
                               axis=1)   # the zeros stand for the unread future
    forecast = rollout(params, all_times, padded, n)[n - 1:]
    return numpy.swapaxes(backend.to_numpy(forecast), 0, 1)
