"""tutorials/stiff.py: its field is Robertson's kinetics, the quick run writes every picture and
finite numbers, dopri5's stop carries the stiffness diagnosis, the gradients it trains with agree
with central differences, a resumed run repeats an uninterrupted one, a resume with another seed
is refused, and Ctrl-C leaves a checkpoint of the last completed iteration."""
import dataclasses
import json
import math

import numpy
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import runs

PICTURES = ["solvers.png", "training.png", "trajectories.png"]


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/stiff.py")


def robertson_as_written(y, k1, k2, k3):
    """Hairer & Wanner II, sec. IV.1, eq. (1.3), term by term."""
    return numpy.array([-k1 * y[0] + k3 * y[1] * y[2],
                        k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2,
                        k2 * y[1] ** 2])


def test_field_is_robertsons_kinetics_in_scaled_units(tutorial):
    rng = numpy.random.default_rng(0)
    y, scale = rng.uniform(0.0, 1.0, 3) * [1.0, 1e-4, 1.0], numpy.array([1.0, 3e-5, 0.9])
    log10_rates = tutorial.TRUE_LOG10_RATES + rng.normal(0.0, 0.3, 3)
    field = tutorial.robertson(scale)(y / scale, 0.0, log10_rates)
    expected = robertson_as_written(y, *10.0 ** log10_rates) / scale
    numpy.testing.assert_allclose(field, expected, rtol=1e-12)


def test_quick_run_writes_pictures_result_and_table_with_finite_numbers(quick_run):
    result, out = quick_run("stiff")
    assert sorted(path.name for path in result["files"]) == PICTURES
    assert all(path.stat().st_size > 1000 for path in result["files"])
    saved = json.loads(runs.result_path(out, "robertson").read_text())
    numbers = (saved["fitted_rates"] + saved["relative_errors"]
               + saved["max_scaled_trajectory_error"]
               + [saved["final_loss"], saved["loss_at_true_rates"], saved["cpu_seconds"]])
    assert all(math.isfinite(x) for x in numbers)
    assert saved["final_loss"] < saved["initial_loss"]
    assert saved["solve"]["jacobians"] > 0 and saved["solve"]["factorisations"] > 0
    table = (out / "table.md").read_text()
    assert "| k3 | 1e+04 |" in table and "| 1e+05 |" in table


def test_dopri5_stops_with_the_stiffness_diagnosis_where_rodas4_finishes(quick_run):
    result, _ = quick_run("stiff")
    longest = [row for row in result["solvers"] if row["end_time"] == 1e5]
    by_method = {row["method"]: row for row in longest}
    assert "appears stiff" in by_method["dopri5"]["error"]
    assert "error" not in by_method["rodas4"]


def test_training_gradient_agrees_with_central_differences_and_every_mode_or_is_refused(
        quick_run):
    result, _ = quick_run("stiff")
    checks = result["gradients"]
    assert checks["backprop_vs_central_differences"] < 1e-4  # training rtol 1e-5
    modes = checks["modes"]
    assert [(row["method"], row["end_time"]) for row in modes] == [
        ("rodas4", 1e-2), ("rodas4", 1e-1), ("scipy:BDF", 1e5)]
    assert modes[0]["relative_difference"] < 1e-4  # up to t = 1e-2 the backward z holds
    for row in modes[1:]:  # refused by the adjoint's own checks, or right
        if "refused" in row:
            assert row["refused"].startswith("the adjoint's backward solve (grad='adjoint'")
        else:
            assert row["relative_difference"] < 1e-4


def test_help_lists_the_options(tutorial, capsys):
    with pytest.raises(SystemExit) as exit_:
        tutorial.parse_args(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert all(option in shown for option in ("--quick", "--resume", "--out", "--seed",
                                              "--quiet", "--iters"))


def test_a_resumed_run_repeats_the_uninterrupted_one(tutorial, tmp_path):
    config = dataclasses.replace(tutorial.QUICK_CONFIG, n_times=12)
    data = tutorial.make_data(config, numpy.random.default_rng(1))

    def train(name, iters, resume=False):
        checkpoint = runs.Checkpoint(tmp_path / f"{name}.npz", every=2)
        return tutorial.train(data, dataclasses.replace(config, iters=iters), tutorial.SOLVER,
                              checkpoint, resume=resume, quiet=True)

    straight = train("straight", 3)
    train("resumed", 2)
    resumed = train("resumed", 3, resume=True)
    numpy.testing.assert_array_equal(resumed["params"], straight["params"])
    for key in ("losses", "log10_rates", "nfe", "jacobians"):
        assert resumed["log"][key] == straight["log"][key]


def test_a_resume_with_another_seed_is_refused_naming_it(tutorial, quick_run):
    _, out = quick_run("stiff")
    with pytest.raises(ValueError, match="seed: checkpoint 0, this run 1"):
        tutorial.main(["--quick", "--quiet", "--out", str(out), "--resume", "--seed", "1"])


def test_ctrl_c_saves_the_last_completed_iteration_and_says_how_to_resume(
        tutorial, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tutorial, "loss_and_grad", interrupted_at_call(tutorial.loss_and_grad, 3))
    stopped_by_ctrl_c(tutorial.main, ["--quick", "--quiet", "--out", str(tmp_path)], capsys)
    assert runs.Checkpoint(tmp_path / "checkpoint.npz").load()["step"] == 2
