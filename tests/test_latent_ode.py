"""tutorials/latent_ode.py: the ELBO's terms by hand, a --quick run that learns, and the gradient of
encoder -> odeint -> decoder against central finite differences.

(The spiral generator's shapes and clockwise/counter-clockwise balance are checked in
tests/test_datasets.py.)
"""
import dataclasses
import math

import numpy
import pytest
from scripts import load_script

from minode import backend
from minode.gradcheck import check_grads


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/latent_ode.py")


def tiny_batch(tutorial, rng, batch_size=2, n_observed=4, n_future=3):
    """A `Batch` of random 2-D points at irregular increasing times."""
    times = numpy.cumsum(rng.uniform(0.1, 0.4, size=n_observed + n_future))
    x = rng.normal(size=(batch_size, n_observed + n_future, 2))
    return tutorial.Batch(t_observed=times[:n_observed], x_observed=x[:, :n_observed],
                          t_future=times[n_observed:], x_future=x[:, n_observed:],
                          clean_future=x[:, n_observed:])


def hand_made_params(tutorial, rng, mean, log_var, velocity):
    """Latent ODE parameters whose output is known in closed form.

    The encoder's read-out has zero weights, so q(z0) = N(mean, diag(exp(log_var))) whatever
    the GRU does. The dynamics' last layer has zero weights and bias ``velocity``, so
    dz/dt = velocity and z(t) = z0 + velocity * t. The decoder returns (z_1, z_2): its hidden
    layer is z_1 + 10, z_2 + 10 (ELU is the identity on positive inputs) and its output
    subtracts the 10 again.
    """
    latent_dim = len(mean)
    params = tutorial.init_latent_ode(rng, latent_dim=latent_dim, encoder_units=3,
                                      dynamics_units=4, decoder_units=2)
    params["encoder_out"] = {"w": numpy.zeros((2 * latent_dim, 3)),
                             "b": numpy.concatenate([mean, log_var])}
    params["dynamics"][-1] = {"w": numpy.zeros((latent_dim, 4)), "b": numpy.array(velocity)}
    first = numpy.zeros((2, latent_dim))
    first[0, 0] = first[1, 1] = 1.0
    params["decoder"] = [{"w": first, "b": numpy.array([10.0, 10.0])},
                         {"w": numpy.eye(2), "b": numpy.array([-10.0, -10.0])}]
    return params


def test_elbo_terms_match_hand_computed_values_on_a_tiny_case(tutorial):
    rng = numpy.random.default_rng(0)
    mean, log_var = numpy.array([0.3, -0.2, 0.5]), numpy.array([-1.0, 0.4, -0.3])
    velocity = [0.5, -0.25, 1.0]
    params = hand_made_params(tutorial, rng, mean, log_var, velocity)
    batch = tiny_batch(tutorial, rng)
    eps = rng.normal(size=(2, 3))

    nll, kl = tutorial.elbo_terms(params, batch, eps, {"method": "dopri5", "rtol": 1e-9,
                                                       "atol": 1e-12})

    # By hand: z0 = mean + exp(log_var / 2) * eps, x_hat(t) = z0[:2] + velocity[:2] * t.
    z0 = mean + numpy.exp(log_var / 2) * eps
    times = numpy.concatenate([batch.t_observed, batch.t_future])
    targets = numpy.concatenate([batch.x_observed, batch.x_future], axis=1)
    predicted = z0[:, None, :2] + numpy.array(velocity[:2]) * times[None, :, None]
    s2 = tutorial.LIKELIHOOD_STD ** 2
    expected_nll = numpy.sum(0.5 * (math.log(2 * math.pi * s2)
                                    + (targets - predicted) ** 2 / s2)) / 2
    expected_kl = 0.5 * numpy.sum(numpy.exp(log_var) + mean ** 2 - 1 - log_var)
    assert float(nll) == pytest.approx(expected_nll, rel=1e-9)
    assert float(kl) == pytest.approx(expected_kl, rel=1e-12)
    loss = tutorial.latent_ode_loss(params, batch, eps, {"method": "dopri5", "rtol": 1e-9,
                                                         "atol": 1e-12})
    assert float(loss) == pytest.approx(expected_nll + expected_kl, rel=1e-9)


def test_encoder_reads_observations_backwards_with_gaps_to_the_next_time(tutorial):
    t = numpy.array([0.0, 0.5, 1.25])
    x = numpy.arange(6.0).reshape(1, 3, 2)
    inputs = backend.to_numpy(tutorial.encoder_inputs(t, x))
    numpy.testing.assert_allclose(inputs[:, 0], [[4, 5, 0.0], [2, 3, 0.75], [0, 1, 0.5]])


@pytest.mark.parametrize("grad_mode", ["backprop", "adjoint"])
def test_encoder_odeint_decoder_gradient_matches_central_differences(tutorial, grad_mode):
    rng = numpy.random.default_rng(1)
    params = tutorial.init_latent_ode(rng, latent_dim=2, encoder_units=3, dynamics_units=3,
                                      decoder_units=3)
    batch = tiny_batch(tutorial, rng, batch_size=2, n_observed=3, n_future=2)
    eps = rng.normal(size=(2, 2))
    solver = {"method": "dopri5", "rtol": 1e-11, "atol": 1e-12, "grad": grad_mode}
    # The NLL is scaled by 1 / LIKELIHOOD_STD^2; multiplying it back keeps the tolerances
    # meaningful.
    scale = tutorial.LIKELIHOOD_STD ** 2
    check_grads(lambda p: tutorial.latent_ode_loss(p, batch, eps, solver) * scale, params,
                rtol=1e-5, atol=1e-7)


def test_rnn_gradient_matches_central_differences(tutorial):
    rng = numpy.random.default_rng(2)
    params = tutorial.init_rnn(rng, units=3)
    batch = tiny_batch(tutorial, rng, batch_size=2, n_observed=3, n_future=2)
    scale = tutorial.LIKELIHOOD_STD ** 2
    check_grads(lambda p: tutorial.rnn_loss(p, batch) * scale, params, rtol=1e-6, atol=1e-8)


def test_rnn_prediction_feeds_its_own_outputs_back(tutorial):
    """Past the last observation the RNN reads its own previous prediction: treating those
    predictions as observations, one more at a time, must give back the same next values."""
    rng = numpy.random.default_rng(3)
    params = tutorial.init_rnn(rng, units=4)
    batch = tiny_batch(tutorial, rng, batch_size=2, n_observed=3, n_future=4)
    free = tutorial.rnn_predict(params, batch.t_observed, batch.x_observed, batch.t_future)
    assert free.shape == (2, 4, 2)
    xs = numpy.concatenate([batch.x_observed, free[:, :-1]], axis=1)
    times = numpy.concatenate([batch.t_observed, batch.t_future])
    for k in range(4):
        step = tutorial.rnn_predict(params, times[:3 + k], xs[:, :3 + k], times[3 + k:])
        numpy.testing.assert_allclose(step[:, 0], free[:, k], rtol=1e-10, atol=1e-12)


def test_quick_run_lowers_the_loss_of_both_models_and_writes_its_outputs(tutorial, tmp_path):
    result = tutorial.main(["--quick", "--quiet", "--out", str(tmp_path)])
    # The same held-out batch (posterior mean for z0) before, with the freshly initialised
    # parameters of the same seed, and after the 30 steps of --quick.
    before, after = result["fixed_batch_loss_before"], result["fixed_batch_loss_after"]
    for name in ("latent_ode", "rnn"):
        assert after[name] < 0.95 * before[name], (name, before[name], after[name])
    for name in ("table2.md", "reconstructions.png", "homotopy.png", "losses.png",
                 "checkpoint.npz", "results.json"):
        assert (tmp_path / name).exists(), name
    table = (tmp_path / "table2.md").read_text()
    assert "| Latent ODE |" in table and "| RNN |" in table and "30/100" in table


def test_resume_after_a_crash_repeats_the_uninterrupted_run(tutorial, tmp_path, monkeypatch):
    straight = tutorial.main(["--quick", "--quiet", "--no-plots", "--iters", "6",
                              "--out", str(tmp_path / "straight")])

    monkeypatch.setattr(tutorial, "QUICK",
                        dataclasses.replace(tutorial.QUICK, checkpoint_every=2))
    schedule = tutorial.longest_window

    def crash_at_step_5(iteration, iters):
        if iteration == 4:
            raise KeyboardInterrupt("simulated crash after the checkpoint of step 4")
        return schedule(iteration, iters)

    monkeypatch.setattr(tutorial, "longest_window", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        tutorial.main(["--quick", "--quiet", "--no-plots", "--iters", "6",
                       "--out", str(tmp_path / "resumed")])
    monkeypatch.setattr(tutorial, "longest_window", schedule)
    resumed = tutorial.main(["--quick", "--quiet", "--no-plots", "--iters", "6", "--resume",
                             "--out", str(tmp_path / "resumed")])
    for name in ("latent_ode", "rnn"):
        assert len(resumed["losses"][name]) == 6
        numpy.testing.assert_allclose(resumed["losses"][name], straight["losses"][name],
                                      rtol=1e-9)
    assert resumed["rmse"] == straight["rmse"]
