"""tutorials/latent_ode.py: its data layout (training windows cover every test future) and
masking (each spiral at its own times), the ELBO's terms by hand, gradients against central
finite differences, the RNN losses (teacher forcing and roll-out), the baselines, the
validation-selected parameters, a --quick run that learns, crash + resume, a refused resume
with another seed, and Ctrl-C. (The spiral generators are checked in tests/test_spirals.py, the
GRU's roll-outs in tests/test_gru_forecast.py.)
"""
import dataclasses
import math
import shutil

import numpy
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import backend, gru_forecast, runs
from minode import spirals as spiral_data
from minode.gradcheck import check_grads

TIGHT = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-12}


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/latent_ode.py")


@pytest.fixture(scope="module")
def spirals(tutorial):
    return tutorial.make_spirals(dataclasses.replace(tutorial.QUICK_CONFIG, n_spirals=12,
                                                     n_validation=2, n_test=2), seed=0)


def tiny_batch(tutorial, rng, batch_size=2, n_observed=4, n_future=3):
    """A `Batch` of random 2-D points, each row at its own irregular increasing times."""
    times = numpy.cumsum(rng.uniform(0.1, 0.4, size=(batch_size, n_observed + n_future)), axis=1)
    x = rng.normal(size=(batch_size, n_observed + n_future, 2))
    return tutorial.Batch(t_observed=times[:, :n_observed], x_observed=x[:, :n_observed],
                          t_future=times[:, n_observed:], x_future=x[:, n_observed:],
                          clean_future=x[:, n_observed:])


# ---------------------------------------------------------------------------------------------
# Data and masking: every spiral is seen at its own n points, and only there
# ---------------------------------------------------------------------------------------------

def test_each_row_gets_its_own_sorted_subset_of_the_observation_range(tutorial):
    subsets = tutorial.random_subsets(numpy.random.default_rng(0), n_rows=50, n=30)
    assert subsets.shape == (50, 30)
    assert numpy.all(numpy.diff(subsets, axis=1) > 0)               # sorted, no repeats
    assert subsets.min() >= 0 and subsets.max() < tutorial.OBSERVED_RANGE
    assert len({tuple(row) for row in subsets}) == 50               # no two rows alike


def test_a_batch_holds_each_spirals_own_points_and_the_shared_future(tutorial, spirals):
    ids = numpy.array([3, 0, 7])
    subsets = tutorial.random_subsets(numpy.random.default_rng(1), n_rows=3, n=5)
    batch = tutorial.make_batch(spirals, ids, subsets)
    for row, (spiral, points) in enumerate(zip(ids, subsets)):
        numpy.testing.assert_array_equal(batch.t_observed[row], spirals.times[points])
        numpy.testing.assert_array_equal(batch.x_observed[row], spirals.observations[spiral,
                                                                                     points])
        numpy.testing.assert_array_equal(batch.clean_future[row],
                                         spirals.trajectories[spiral, 100:200])
        numpy.testing.assert_array_equal(batch.x_future[row], spirals.observations[spiral,
                                                                                   100:200])
    numpy.testing.assert_array_equal(batch.t_future, numpy.tile(spirals.times[100:200], (3, 1)))


def test_the_split_is_disjoint_and_covers_every_spiral(tutorial):
    train, validation, test = tutorial.split_spirals(tutorial.Config())
    assert (len(train), len(validation), len(test)) == (800, 100, 100)
    assert len(numpy.unique(numpy.concatenate([train, validation, test]))) == 1000


def test_training_observations_cover_every_angle_a_test_future_runs_through(tutorial):
    """The default layout: a held-out window lies whole on the three turns; a training window's
    observation range does, and it starts anywhere it fits, so every future point of every
    test spiral lies within the observation range of some training spirals (also the last
    ones, on the outer turn)."""
    config = tutorial.Config()
    spirals = tutorial.make_spirals(config, seed=0)
    train, _, test = tutorial.split_spirals(config)
    step, end = spiral_data.AUTHORS_ANGLE_STEP, 6 * math.pi
    train_start = spirals.start_angles[train]
    assert train_start.max() + 99 * step <= end + 1e-12
    assert spirals.start_angles[test].max() + 199 * step <= end + 1e-12
    future = (spirals.start_angles[test, None] + spirals.times[None, 100:]).ravel()
    observed_by = ((train_start[None, :] <= future[:, None] + 1e-12)
                   & (future[:, None] <= train_start[None, :] + 99 * step + 1e-12)).sum(axis=1)
    # the last angles of the outer turn fit the observation range of the latest windows only
    assert observed_by.min() >= 1 and numpy.median(observed_by) >= 100
    # the test futures run past every held-out observation range: only training windows
    # that start later than a held-out one can cover them
    assert future.max() > spirals.start_angles[test].max() + 99 * step + 90 * step
    for direction in (True, False):   # both directions reach the outer turn
        rows = spirals.clockwise[train] == direction
        assert train_start[rows].max() + 99 * step > end - 5 * step


@pytest.mark.parametrize("fit_future", [False, True])
def test_the_losses_read_only_the_points_they_fit(tutorial, fit_future):
    """Changing what a spiral does not show (the future, unless it is fitted) changes neither
    loss; changing one observed point changes both."""
    rng = numpy.random.default_rng(2)
    params = tutorial.init_latent_ode(rng, encoder_units=3, dynamics_units=4, decoder_units=3)
    rnn = gru_forecast.init(rng, units=3)
    batch = tiny_batch(tutorial, rng)
    eps = rng.normal(size=(2, tutorial.LATENT_DIM))

    def losses(batch):
        return (float(tutorial.latent_ode_loss(params, batch, eps, 0.3, TIGHT, fit_future)),
                float(tutorial.rnn_loss(rnn, batch, 0.3, fit_future)),
                float(tutorial.rnn_loss(rnn, batch, 0.3, fit_future, read_fraction=0.5)))

    reference = losses(batch)
    other_future = dataclasses.replace(batch, x_future=batch.x_future + 1.0)
    observed = batch.x_observed.copy()
    observed[1, 2] += 0.5
    other_observation = dataclasses.replace(batch, x_observed=observed)
    if fit_future:
        assert all(a != b for a, b in zip(losses(other_future), reference))
    else:
        assert losses(other_future) == reference
    assert all(a != b for a, b in zip(losses(other_observation), reference))


def test_a_batch_loss_is_the_mean_of_each_spirals_own_loss(tutorial):
    """Rows at different times are independent problems: the 2-D t of `odeint` solves each
    at its own times."""
    rng = numpy.random.default_rng(3)
    params = tutorial.init_latent_ode(rng, encoder_units=3, dynamics_units=4, decoder_units=3)
    batch = tiny_batch(tutorial, rng, batch_size=3)
    eps = rng.normal(size=(3, tutorial.LATENT_DIM))
    whole = float(tutorial.latent_ode_loss(params, batch, eps, 0.3, TIGHT, True))
    rows = [float(tutorial.latent_ode_loss(
        params, tutorial.Batch(*(field[b:b + 1] for field in dataclasses.astuple(batch))),
        eps[b:b + 1], 0.3, TIGHT, True)) for b in range(3)]
    assert whole == pytest.approx(numpy.mean(rows), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# The model and its losses
# ---------------------------------------------------------------------------------------------

def hand_made_params(tutorial, rng, mean, log_var, velocity):
    """Latent ODE parameters whose latent path is known in closed form.

    The encoder's read-out has zero weights, so q(z0) = N(mean, diag(exp(log_var))) whatever
    the GRU does. The dynamics' last layer has zero weights and bias ``velocity``, so
    dz/dt = velocity and z(t) = z0 + velocity * (t - t_first) for each spiral's first time.
    """
    latent_dim = len(mean)
    params = tutorial.init_latent_ode(rng, latent_dim=latent_dim, encoder_units=3,
                                      dynamics_units=4, decoder_units=2)
    params["encoder_out"] = {"w": numpy.zeros((2 * latent_dim, 3)),
                             "b": numpy.concatenate([mean, log_var])}
    params["dynamics"][-1] = {"w": numpy.zeros((latent_dim, 4)), "b": numpy.array(velocity)}
    return params


def test_elbo_terms_match_hand_computed_values_on_a_tiny_case(tutorial):
    rng = numpy.random.default_rng(0)
    mean, log_var = numpy.array([0.3, -0.2, 0.5]), numpy.array([-1.0, 0.4, -0.3])
    velocity = numpy.array([0.5, -0.25, 1.0])
    params = hand_made_params(tutorial, rng, mean, log_var, velocity)
    batch = tiny_batch(tutorial, rng)
    eps = rng.normal(size=(2, 3))
    std = 0.3

    nll, kl = tutorial.elbo_terms(params, batch, eps, std, TIGHT)

    # By hand: z0 = mean + exp(log_var / 2) * eps at each row's first time, then a straight
    # line; the decoder is a tanh MLP, evaluated here with NumPy.
    z0 = mean + numpy.exp(log_var / 2) * eps
    elapsed = batch.t_observed - batch.t_observed[:, :1]
    z = z0[:, None, :] + velocity * elapsed[..., None]
    (first, second) = params["decoder"]
    predicted = numpy.tanh(z @ first["w"].T + first["b"]) @ second["w"].T + second["b"]
    expected_nll = numpy.sum(0.5 * (math.log(2 * math.pi * std ** 2)
                                    + (batch.x_observed - predicted) ** 2 / std ** 2)) / 2
    expected_kl = 0.5 * numpy.sum(numpy.exp(log_var) + mean ** 2 - 1 - log_var)
    assert float(nll) == pytest.approx(expected_nll, rel=1e-9)
    assert float(kl) == pytest.approx(expected_kl, rel=1e-12)


def test_encoder_reads_each_row_backwards_with_its_own_gaps(tutorial):
    t = numpy.array([[0.0, 0.5, 1.25], [0.1, 0.2, 0.6]])
    x = numpy.arange(12.0).reshape(2, 3, 2)
    inputs = backend.to_numpy(tutorial.encoder_inputs(t, x))
    numpy.testing.assert_allclose(inputs[:, 0], [[4, 5, 0.0], [2, 3, 0.75], [0, 1, 0.5]])
    numpy.testing.assert_allclose(inputs[:, 1], [[10, 11, 0.0], [8, 9, 0.4], [6, 7, 0.1]])


@pytest.mark.parametrize("grad_mode", ["backprop", "adjoint"])
def test_encoder_odeint_decoder_gradient_matches_central_differences(tutorial, grad_mode):
    rng = numpy.random.default_rng(1)
    params = tutorial.init_latent_ode(rng, latent_dim=2, encoder_units=3, dynamics_units=3,
                                      decoder_units=3)
    batch = tiny_batch(tutorial, rng, batch_size=2, n_observed=3, n_future=2)
    eps = rng.normal(size=(2, 2))
    solver = {**TIGHT, "grad": grad_mode}
    # The NLL is scaled by 1 / s^2 with s = 0.3; multiplying it back keeps the tolerances
    # meaningful.
    check_grads(lambda p: tutorial.latent_ode_loss(p, batch, eps, 0.3, solver, True) * 0.09,
                params, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fit_future", [False, True])
def test_the_forecast_rnn_reads_a_part_of_the_observations_and_forecasts_the_rest(tutorial,
                                                                                 fit_future):
    """read_fraction 0.5 of 4 observations: the GRU reads 2 fitted points and forecasts the
    other fitted points from its own predictions; None reads them all (teacher forcing)."""
    rng = numpy.random.default_rng(2)
    params = gru_forecast.init(rng, units=3)
    batch = tiny_batch(tutorial, rng, n_observed=4, n_future=3)
    times, xs = tutorial.fitted_part(batch, fit_future)
    for read_fraction, n_read in ((0.5, 2), (None, times.shape[1])):
        expected = gru_forecast.rollout_nll(params, times, xs, n_read, 0.3)
        assert float(tutorial.rnn_loss(params, batch, 0.3, fit_future, read_fraction)) == \
            pytest.approx(float(expected), rel=1e-12)


def test_linear_extrapolation_continues_a_straight_line_exactly(tutorial):
    t = numpy.array([[0.0, 0.3, 0.5, 1.0], [0.2, 0.4, 0.9, 1.1]])
    velocity, start = numpy.array([[1.5, -0.5], [0.2, 2.0]]), numpy.array([[0.1, 0.2], [3, 4]])
    x = start[:, None] + velocity[:, None] * t[..., None]
    later = numpy.array([[1.5, 2.0], [1.2, 3.0]])
    for n_last in (2, 4):
        numpy.testing.assert_allclose(tutorial.linear_extrapolation(n_last, t, x, later),
                                      start[:, None] + velocity[:, None] * later[..., None],
                                      rtol=1e-12)


def test_validation_keeps_the_params_of_the_lowest_score(tutorial):
    config = dataclasses.replace(tutorial.QUICK_CONFIG, iters=7, validate_every=2)
    scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}
    state = {"step": 0, "params": None, "best_params": None, "log": {"validation": []}}
    kept = {2: "a", 4: "b", 6: "b", 7: "d"}
    for step, params in enumerate(["x", "a", "x", "b", "x", "c", "d"], start=1):
        state["step"], state["params"] = step, params
        tutorial.validate(state, scores.get, config)
        if step in kept:
            assert state["best_params"] == kept[step], step
    assert state["log"]["validation"] == [[2, 3.0], [4, 1.0], [6, 2.0], [7, 0.5]]
    assert tutorial.best_step(state) == 7


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

def test_quick_run_lowers_the_loss_of_both_models(quick_run):
    result, _ = quick_run("latent_ode")
    # The same validation batch (posterior mean for z0) before, with the freshly initialised
    # parameters of the same seed, and after the steps of --quick.
    before, after = result["probe_loss_before"], result["probe_loss_after"]
    for name in ("latent_ode", "rnn_forecast", "rnn_teacher"):
        assert after[name] < 0.9 * before[name], (name, before[name], after[name])


def test_quick_run_writes_table_2_with_the_papers_numbers_and_the_baselines(quick_run):
    result, out = quick_run("latent_ode")
    for name in ("table2.md", "reconstructions.png", "homotopy.png", "losses.png",
                 "latent_ode_checkpoint.npz", "rnn_forecast_checkpoint.npz",
                 "rnn_teacher_checkpoint.npz", "latent_ode_result.json"):
        assert (out / name).exists(), name
    table = (out / "table2.md").read_text()
    assert "## Training on the observations only" in table
    for row in ("| paper: RNN | 0.3937 | 0.3202 | 0.1813 | - | - | - |",
                "| paper: Latent ODE | 0.1642 | 0.1502 | 0.1346 | - | - | - |",
                "| minode: Latent ODE |", "| minode: RNN, trained to forecast |",
                "| minode: RNN, teacher-forced |", "| minode: predict zero |",
                "| minode: predict the last observation |",
                f"| minode: linear extrapolation of the last observations "
                f"({result['linear_points']}) |"):
        assert row in table, row
    rmse = result["rmse"]
    for target in ("clean", "noisy"):
        for n in (30, 50, 100):   # "predict zero" scores exactly the RMS of the targets
            assert rmse["zero"][target][n] == pytest.approx(rmse["target_rms"][target][n],
                                                            rel=1e-12)
            assert f"{rmse['zero'][target][n]:.4f} (100.0%)" in table
    assert rmse["zero"]["noisy"][30] > rmse["zero"]["clean"][30]   # the noise adds to the RMS


def test_table_2_holds_both_objectives_once_both_have_run(tutorial, quick_run, tmp_path):
    """A --fit window run next to the default run's result: table2.md shows both objectives,
    each with its own numbers, and the window run's files carry its suffix."""
    result, out = quick_run("latent_ode")
    shutil.copy(out / "latent_ode_result.json", tmp_path)
    window = tutorial.main(["--quick", "--quiet", "--no-plots", "--fit", "window",
                            "--out", str(tmp_path)])
    assert window["config"]["fit_future"] and not result["config"]["fit_future"]
    assert (tmp_path / "latent_ode_window_checkpoint.npz").exists()
    table = (tmp_path / "table2.md").read_text()
    observed_part, window_part = table.split("## Training on the observations and 25 points")
    assert "## Training on the observations only" in observed_part
    for part, run in ((observed_part, result), (window_part, window)):
        cell = f"{run['rmse']['latent_ode']['clean'][30]:.4f}"
        assert f"| minode: Latent ODE | {cell} (" in part


def test_a_resume_with_another_seed_is_refused_naming_it(tutorial, quick_run):
    _, out = quick_run("latent_ode")
    with pytest.raises(ValueError, match="seed"):
        tutorial.main(["--quick", "--quiet", "--no-plots", "--out", str(out), "--resume",
                       "--seed", "1"])


def test_ctrl_c_keeps_the_last_completed_step_and_says_how_to_resume(tutorial, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setattr(tutorial, "training_batch", interrupted_at_call(tutorial.training_batch, 3))
    stopped_by_ctrl_c(tutorial.main, ["--quick", "--quiet", "--no-plots", "--out", str(tmp_path)],
                      capsys)
    # the latent ODE trains first: steps 0 and 1 completed, step 2 interrupted
    assert runs.Checkpoint(tmp_path / "latent_ode_checkpoint.npz").load()["step"] == 2


@pytest.mark.slow
def test_resume_after_a_crash_repeats_the_uninterrupted_run(tutorial, tmp_path, monkeypatch):
    options = ["--quick", "--quiet", "--no-plots", "--iters", "6"]
    straight = tutorial.main(options + ["--out", str(tmp_path / "straight")])

    monkeypatch.setattr(tutorial, "QUICK_CONFIG",
                        dataclasses.replace(tutorial.QUICK_CONFIG, checkpoint_every=2))
    draw = tutorial.training_batch

    def crash_at_step_5(data, config, rng, calls=[]):
        calls.append(None)
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated crash after the checkpoint of step 4")
        return draw(data, config, rng)

    monkeypatch.setattr(tutorial, "training_batch", crash_at_step_5)
    with pytest.raises(runs.TrainingInterrupted):
        tutorial.main(options + ["--out", str(tmp_path / "resumed")])
    monkeypatch.setattr(tutorial, "training_batch", draw)
    resumed = tutorial.main(options + ["--resume", "--out", str(tmp_path / "resumed")])
    for name in ("latent_ode", "rnn_forecast", "rnn_teacher"):
        assert len(resumed["losses"][name]) == 6
        numpy.testing.assert_allclose(resumed["losses"][name], straight["losses"][name],
                                      rtol=1e-9)
    assert resumed["rmse"] == straight["rmse"]
