"""tutorials/regularised.py: the quick run trains every variant of both models and writes the
figure, the table and finite numbers; every variant sees the same batches; the loss adds the
weighted RNODE integrals; STEER's end times; resume and Ctrl-C."""
import json
import math

import numpy as np
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import ops, runs


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/regularised.py")


def test_quick_run_trains_every_variant_and_writes_figure_table_and_results(tutorial, quick_run):
    outcome, out = quick_run("regularised")
    results = outcome["results"]
    assert set(results) == {(e, v) for e in tutorial.EXPERIMENTS for v in tutorial.VARIANTS}
    for (experiment, name), result in results.items():
        assert len(result["history"]["nfe_forward"]) == tutorial.QUICK_CONFIG.odenet.steps
        assert result["nfe_forward"] > 0 and result["nfe_backward"] > 0
        assert all(math.isfinite(result[key]) for key in ("score", "cpu_seconds",
                                                          "nfe_forward_test"))
        saved = json.loads(runs.result_path(out, f"{experiment}-{name}").read_text())
        assert saved["variant"] == name and "command" in saved
    assert sorted(path.name for path in outcome["files"]) == ["nfe_over_training.png",
                                                              "table.md"]
    text = (out / "table.md").read_text()
    assert "| kinetic+jacobian |" in text and "### planar CNF, Two Circles" in text


@pytest.mark.parametrize("experiment", ["odenet", "cnf"])
def test_every_variant_sees_the_same_batch_and_steer_varies_only_the_end_time(tutorial,
                                                                              experiment):
    config = tutorial.QUICK_CONFIG
    data = tutorial.load_data(config)
    variants = getattr(config, experiment).variants
    nominal = config.cnf_t_end if experiment == "cnf" else 1.0
    half_width = variants["steer"].steer
    ends = []
    for step in range(20):
        draws = {name: tutorial.step_draws(experiment, data, variant, config, 0, step)
                 for name, variant in variants.items()}
        first = np.asarray(draws["none"][0][0] if experiment == "odenet" else draws["none"][0])
        for name, (batch, noise, t_end) in draws.items():
            same = np.asarray(batch[0] if experiment == "odenet" else batch)
            np.testing.assert_array_equal(same, first)
            assert (noise is not None) == (name == "kinetic+jacobian")
            if name != "steer":
                assert t_end == nominal
        ends.append(draws["steer"][2])
    assert nominal - half_width <= min(ends) < max(ends) <= nominal + half_width


def test_the_loss_adds_the_weighted_integrals_to_the_task_loss(tutorial):
    config = tutorial.QUICK_CONFIG
    params = tutorial.initial_params("cnf", config, 0)
    x = np.random.default_rng(0).normal(size=(8, 2))
    noise = np.random.default_rng(1).choice([-1.0, 1.0], size=(8, 2))
    weighted = tutorial.Variant(kinetic=0.3, jacobian=0.7)
    value = tutorial.loss(params, "cnf", x, weighted, noise, 10.0, config)
    nll, integrals = tutorial.task_loss("cnf", params, x, ("kinetic", "jacobian"), noise, 10.0,
                                        config)
    assert float(value) == pytest.approx(
        float(nll) + 0.3 * float(integrals["kinetic"]) + 0.7 * float(integrals["jacobian"]),
        rel=1e-12)
    assert float(integrals["kinetic"]) > 0 and float(integrals["jacobian"]) > 0
    # without weights nothing is added: the plain negative log-likelihood
    log_p = tutorial.cnf.log_prob(tutorial.planar.planar_cnf_with_trace, x,
                                  np.array([0.0, 10.0]), params, trace="closed_form",
                                  **tutorial.solver_of("cnf", config))
    assert float(tutorial.loss(params, "cnf", x, tutorial.Variant(), None, 10.0, config)) == \
        pytest.approx(-float(ops.mean(log_p)), rel=1e-12)


def test_a_resume_with_another_seed_is_refused_naming_it(tutorial, quick_run):
    _, out = quick_run("regularised")
    with pytest.raises(ValueError, match="seed: checkpoint 0, this run 1"):
        tutorial.main(["--quick", "--quiet", "--out", str(out), "--resume", "--seed", "1"])


def test_ctrl_c_saves_the_last_completed_step_and_a_resume_finishes_like_a_straight_run(
        tutorial, tmp_path, monkeypatch, capsys):
    options = ["--quick", "--quiet", "--experiments", "cnf", "--variants", "steer", "--out"]
    loss_and_grad = tutorial.loss_and_grad
    monkeypatch.setattr(tutorial, "loss_and_grad", interrupted_at_call(loss_and_grad, 3))
    stopped_by_ctrl_c(tutorial.main, options + [str(tmp_path)], capsys)
    assert runs.Checkpoint(tmp_path / "cnf-steer_checkpoint.npz").load()["step"] == 2
    monkeypatch.setattr(tutorial, "loss_and_grad", loss_and_grad)
    resumed = tutorial.main(options + [str(tmp_path), "--resume"])["results"]["cnf", "steer"]
    straight = tutorial.main(options + [str(tmp_path / "straight")])["results"]["cnf", "steer"]
    assert resumed["history"] == straight["history"]
    assert resumed["score"] == straight["score"]
