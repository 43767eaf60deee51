"""tutorials/augmented.py: the annuli are the authors' (radii, sizes, labels), the loss is the
Huber loss, the quick run writes every picture and finite numbers, the 1-D Neural ODE keeps
the order of its trajectories and stays above its loss bound, the batches of a repeat are the
same for every p, a resumed run repeats an uninterrupted one, a resume with another seed is
refused, and Ctrl-C leaves a checkpoint of the last completed iteration."""
import dataclasses
import json
import math

import numpy
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import runs

PICTURES = ["annuli_boundaries.png", "annuli_features.png", "annuli_training.png",
            "annuli_trajectories.png", "flip_1d.png"]


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/augmented.py")


def test_the_annuli_have_the_authors_radii_sizes_and_labels(tutorial):
    config = tutorial.DEFAULT_CONFIG
    data = tutorial.make_annuli(config, seed=3)
    assert (config.n_inner, config.n_outer, config.hidden) == (500, 1500, 32)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        radius = numpy.linalg.norm(x, axis=1)
        assert x.shape == (2000, 2) and (y == -1).sum() == 500 and (y == 1).sum() == 1500
        assert radius[y == -1].max() <= 0.5 and radius[y == 1].min() >= 1.0
        assert radius[y == 1].max() <= 1.5
        # uniform in area: a quarter of the inner disc's points lie within radius 0.25
        assert abs(numpy.mean(radius[y == -1] < 0.25) - 0.25) < 0.05
    assert not numpy.allclose(data.x_train, data.x_test)


def test_the_loss_is_the_huber_loss(tutorial):
    errors = numpy.array([-3.0, -0.5, 0.0, 0.2, 1.0, 2.5])
    expected = numpy.mean([2.5, 0.125, 0.0, 0.02, 0.5, 2.0])
    assert float(tutorial.huber(errors)) == pytest.approx(expected, rel=1e-12)


def test_every_model_of_a_repeat_sees_the_same_batches(tutorial):
    config = tutorial.DEFAULT_CONFIG
    per_epoch = tutorial.steps_per_epoch(config)
    assert per_epoch == 32
    epoch = numpy.concatenate([tutorial.batch_indices(k, config, 0, 1) for k in range(32)])
    assert sorted(epoch) == list(range(2000))  # one epoch: every point once
    assert not numpy.array_equal(tutorial.batch_indices(0, config, 0, 2),
                                 tutorial.batch_indices(0, config, 0, 1))


def test_quick_run_writes_pictures_result_and_table_with_finite_numbers(quick_run):
    result, out = quick_run("augmented")
    assert sorted(path.name for path in result["files"]) == PICTURES
    assert all(path.stat().st_size > 1000 for path in result["files"])
    saved = json.loads(runs.result_path(out, "augmented").read_text())
    assert [summary["p"] for summary in saved["annuli"]] == [0, 1, 5]
    for summary in saved["annuli"]:
        for name in ("loss", "accuracy", "test_accuracy", "last_epoch_nfe", "test_nfe"):
            assert math.isfinite(summary[name]["mean"])
        assert summary["test_nfe"]["mean"] >= 8  # dopri5: at least a step of six stages
    table = (out / "table.md").read_text()
    assert "| ANODE, p = 5 |" in table and "| the paper (Dupont et al. 2019) |" in table


def test_the_1d_neural_ode_keeps_its_order_and_its_loss_bound(quick_run):
    flip = quick_run("augmented").result["flip"]
    node = flip["0"]
    assert node["order_kept"]
    assert node["h1_at_minus_1"] < node["h1_at_plus_1"]
    assert node["final_loss"] >= 0.5


def test_help_lists_the_options(tutorial, capsys):
    with pytest.raises(SystemExit) as exit_:
        tutorial.parse_args(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert all(option in shown for option in ("--quick", "--resume", "--out", "--seed",
                                              "--quiet", "--epochs", "--repeats"))


def test_a_resumed_run_repeats_the_uninterrupted_one(tutorial, tmp_path):
    config = dataclasses.replace(tutorial.QUICK_CONFIG, epochs=3)
    data = tutorial.make_annuli(config, seed=0)
    run = tutorial.Run("annuli", 1, 0)

    def train(name, epochs, resume=False):
        checkpoint = runs.Checkpoint(tmp_path / f"{name}.npz", every=tutorial.steps_per_epoch(
            config))
        return tutorial.train(run, data, dataclasses.replace(config, epochs=epochs), 0,
                              checkpoint, resume=resume, quiet=True)

    straight = train("straight", 3)
    train("resumed", 2)
    resumed = train("resumed", 3, resume=True)
    for got, want in zip(tutorial.nn.tree_leaves(resumed["params"]),
                         tutorial.nn.tree_leaves(straight["params"])):
        numpy.testing.assert_array_equal(got, want)
    for key in ("losses", "nfe", "epochs"):
        assert resumed["log"][key] == straight["log"][key]


def test_a_resume_with_another_seed_is_refused_naming_it(tutorial, quick_run):
    _, out = quick_run("augmented")
    with pytest.raises(ValueError, match="seed: checkpoint 0, this run 1"):
        tutorial.main(["--quick", "--quiet", "--out", str(out), "--resume", "--seed", "1"])


def test_ctrl_c_saves_the_last_completed_iteration_and_says_how_to_resume(
        tutorial, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tutorial, "flip_loss_and_grad",
                        interrupted_at_call(tutorial.flip_loss_and_grad, 3))
    stopped_by_ctrl_c(tutorial.main, ["--quick", "--quiet", "--out", str(tmp_path)], capsys)
    assert runs.Checkpoint(tmp_path / "flip_p0.npz").load()["step"] == 2
