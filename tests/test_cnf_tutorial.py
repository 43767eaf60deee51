"""tutorials/cnf.py: the quick run writes every figure and table, the models' directions agree,
an interrupted run resumes to the parameters of an uninterrupted one, a resume with other options is
refused and Ctrl-C leaves a checkpoint and one line saying how to continue."""
import dataclasses
import math

import numpy
import pytest
from numpy.testing import assert_allclose
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import runs, tree


@pytest.fixture(scope="module")
def tutorial():
    return load_script("tutorials/cnf.py")


def test_quick_run_writes_figures_tables_and_finite_numbers(quick_run):
    results, out = quick_run("cnf")
    assert len(results) == 3 * 2 + 2 * 2          # Figure 4: 3 targets x 2 models; Figure 5
    for result in results.values():
        value = result["kl"] if result["objective"] == "kl" else result["nll"]
        assert math.isfinite(value) and result["steps"] == 3
    for name in ("figure4.png", "figure5_circles.png", "figure5_moons.png",
                 "flow_circles.gif", "flow_moons.gif", "table.md"):
        assert (out / name).stat().st_size > 500, name
    table = (out / "table.md").read_text()
    assert "| U3c |" in table and "| moons |" in table and "density summed" in table


def test_a_finished_model_is_loaded_on_resume_not_trained_again(tutorial, tmp_path):
    first = tutorial.main(["--quick", "--quiet", "--targets", "U1", "--datasets",
                           "--out", str(tmp_path)])
    again = tutorial.main(["--quick", "--quiet", "--targets", "U1", "--datasets", "--resume",
                           "--out", str(tmp_path)])
    for name in first:
        assert again[name]["kl"] == first[name]["kl"]
        assert again[name]["cpu_seconds"] == first[name]["cpu_seconds"]  # no new steps


def test_nf_density_picture_inverts_the_flow_and_integrates_to_one(tutorial):
    config = dataclasses.replace(tutorial.QUICK_CONFIG, grid=161)
    task = tutorial.Task("kl", "U1", "nf", 4)
    params = tutorial.init_model(task, config, numpy.random.default_rng(0))
    params["u"] = 2 * params["u"] + 0.5
    grid, axis = tutorial.square_grid(8.0, config.grid)
    density = tutorial.model_density_on_grid(task, params, config, grid)
    assert_allclose(density.sum() * (axis[1] - axis[0]) ** 2, 1.0, rtol=1e-3)


def test_likelihood_direction_and_sampling_direction_agree(tutorial):
    """The CNF's samples (base -> data) have, under log_likelihood (data -> base), the
    log-density that the forward solve reports."""
    config = tutorial.QUICK_CONFIG
    task = tutorial.Task("nll", "circles", "cnf", 3)
    params = tutorial.init_model(task, config, numpy.random.default_rng(0))
    z = numpy.random.default_rng(1).standard_normal((5, 2))
    solver = {**tutorial.SOLVER, "rtol": 1e-9, "atol": 1e-9}
    x, log_q = tutorial.push_forward(task, params, z, config, solver)
    assert_allclose(tutorial.log_likelihood(task, params, x, config, solver), log_q, rtol=1e-6)


def test_an_interrupted_and_resumed_run_repeats_the_uninterrupted_one(tutorial, tmp_path,
                                                                        monkeypatch):
    config = dataclasses.replace(
        tutorial.QUICK_CONFIG, matching_cnf=tutorial.Training(steps=6, lr=3e-3, batch=8),
        checkpoint_every=2)
    task = tutorial.Task("kl", "U2c", "cnf", 2)

    def train(out, resume=False):
        out.mkdir(exist_ok=True)
        return tutorial.train(task, config, out, seed=3, resume=resume, quiet=True)

    straight = train(tmp_path / "straight")
    batches = tutorial.training_batch

    def crash_at_step_3(task, batch, seed, step):
        if step == 3:
            raise KeyboardInterrupt("simulated crash")
        return batches(task, batch, seed, step)

    monkeypatch.setattr(tutorial, "training_batch", crash_at_step_3)
    with pytest.raises(runs.TrainingInterrupted):
        train(tmp_path / "resumed")
    checkpoint = tmp_path / "resumed" / f"{task.name}_checkpoint.npz"
    assert runs.Checkpoint(checkpoint).load()["step"] == 3  # steps 0, 1, 2 completed
    monkeypatch.setattr(tutorial, "training_batch", batches)
    resumed = train(tmp_path / "resumed", resume=True)
    assert resumed["step"] == 6 and resumed["log"]["losses"] == straight["log"]["losses"]
    for a, b in zip(tree.tree_leaves(straight["params"]), tree.tree_leaves(resumed["params"])):
        numpy.testing.assert_array_equal(a, b)


def test_a_resume_with_another_seed_is_refused(tutorial, quick_run):
    _, out = quick_run("cnf")
    with pytest.raises(ValueError, match="seed"):
        tutorial.main(["--quick", "--quiet", "--out", str(out), "--resume", "--seed", "1"])


def test_ctrl_c_saves_the_last_completed_step_and_says_how_to_resume(tutorial, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setattr(tutorial, "loss_and_grad", interrupted_at_call(tutorial.loss_and_grad, 3))
    stopped_by_ctrl_c(tutorial.main, ["--quick", "--quiet", "--targets", "U1", "--datasets",
                                      "--out", str(tmp_path)], capsys)
    assert runs.Checkpoint(tmp_path / "U1-nf-2_checkpoint.npz").load()["step"] == 2
