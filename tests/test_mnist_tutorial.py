"""Tutorial 2 (tutorials/mnist_odenet.py): smoke runs of every model and the ODE-Net's gradient."""
import json

import numpy as np
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import backend, nn, runs, tree
from minode.gradcheck import numerical_grad

tutorial = load_script("tutorials/mnist_odenet.py")


def _quick(tmp_path, model, *extra):
    return tutorial.main(["--quick", "--model", model, "--channels", "8", "--epochs", "3",
                          "--out", str(tmp_path), "--quiet", *extra])


@pytest.mark.parametrize("model", ["rknet", "resnet", "mlp"])
def test_quick_run_lowers_the_training_loss(tmp_path, model):
    outcome = _quick(tmp_path, model, "--no-plots", "--no-memory")
    history = outcome["results"][model]["history"]
    assert len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    assert (tmp_path / f"{model}_checkpoint.npz").exists()
    assert json.loads((tmp_path / f"{model}_result.json").read_text())["epochs"] == 3


def test_quick_odenet_run_writes_table1_and_the_figure3_panels(quick_run):
    outcome, out = quick_run("mnist_odenet")
    history = outcome["results"]["odenet"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(h["nfe_forward"] > 0 and h["nfe_backward"] > 0 for h in history)
    names = {path.name for path in outcome["files"]}
    assert {"table1.md", "figure3a_nfe_vs_error.png", "figure3b_time_vs_nfe.png",
            "figure3c_backward_vs_forward_nfe.png", "figure3d_nfe_vs_epoch.png"} <= names
    assert "ODE-Net" in (out / "table1.md").read_text()
    assert set(outcome["memory"]["odenet"]) == {2, 4}


def test_a_resume_with_another_seed_is_refused_naming_the_seed(quick_run):
    _, out = quick_run("mnist_odenet")
    with pytest.raises(ValueError, match="seed"):
        tutorial.main(["--quick", "--quiet", "--out", str(out), "--resume", "--seed", "1"])


def test_ctrl_c_saves_the_last_completed_epoch_and_says_how_to_resume(tmp_path, monkeypatch,
                                                                     capsys):
    loss_and_grad = tutorial.loss_and_grad
    # the sixth batch: the second of the second epoch (4 batches an epoch)
    monkeypatch.setattr(tutorial, "loss_and_grad", interrupted_at_call(loss_and_grad, 6))
    options = ["--quick", "--quiet", "--model", "mlp", "--no-plots", "--no-memory", "--out"]
    stopped_by_ctrl_c(tutorial.main, options + [str(tmp_path)], capsys)
    state = runs.Checkpoint(tmp_path / "mlp_checkpoint.npz").load()
    assert state["step"] == 1 and len(state["log"]["history"]) == 1
    # the checkpoint holds the end of epoch 1, not a batch into epoch 2: resumed, the run
    # ends where an uninterrupted one does
    monkeypatch.setattr(tutorial, "loss_and_grad", loss_and_grad)
    tutorial.main(options + [str(tmp_path), "--resume"])
    tutorial.main(options + [str(tmp_path / "straight")])
    final = [runs.Checkpoint(out / "mlp_checkpoint.npz").load()["params"]
             for out in (tmp_path, tmp_path / "straight")]
    for resumed_leaf, straight_leaf in zip(*map(tree.tree_leaves, final)):
        np.testing.assert_array_equal(resumed_leaf, straight_leaf)


def test_table1_keeps_the_memory_an_earlier_command_measured(tmp_path):
    first = _quick(tmp_path, "mlp", "--epochs", "1", "--no-plots")
    measured = first["memory"]["mlp"]["-"]
    second = _quick(tmp_path, "resnet", "--epochs", "1", "--no-plots", "--no-memory")
    assert set(second["memory"]) == {"mlp"}
    assert second["memory"]["mlp"]["-"] == pytest.approx(measured)
    rows = {line.split(" | ")[0]: line for line in (tmp_path / "table1.md").read_text().splitlines()}
    assert f"{measured:.1f} (no solver)" in rows["| 1-Layer MLP"]
    assert "not measured" in rows["| ResNet"]


def test_a_crashed_and_resumed_run_repeats_the_uninterrupted_one(tmp_path, monkeypatch):
    def run(out, *extra):
        options = ["--quick", "--model", "mlp", "--epochs", "3", "--batch-size", "32", "--out",
                   str(out), "--quiet", "--no-plots", "--no-memory", *extra]
        return tutorial.main(options)["results"]["mlp"]

    straight = run(tmp_path / "straight")
    batches = tutorial.shuffled_batches

    def crash_in_the_second_epoch(x, y, batch_size, rng, max_shift=0):
        crash_in_the_second_epoch.epochs += 1
        for step, batch in enumerate(batches(x, y, batch_size, rng, max_shift)):
            if crash_in_the_second_epoch.epochs == 2 and step == 3:
                raise KeyboardInterrupt("simulated crash")
            yield batch

    crash_in_the_second_epoch.epochs = 0
    monkeypatch.setattr(tutorial, "shuffled_batches", crash_in_the_second_epoch)
    with pytest.raises(runs.TrainingInterrupted):
        run(tmp_path / "resumed")
    assert tree.load_params(tmp_path / "resumed" / "mlp_checkpoint.npz")["step"] == 1
    epochs_trained = []

    def counted(x, y, batch_size, rng, max_shift=0):
        epochs_trained.append(len(epochs_trained))
        return batches(x, y, batch_size, rng, max_shift)

    monkeypatch.setattr(tutorial, "shuffled_batches", counted)
    resumed = run(tmp_path / "resumed", "--resume")
    assert len(epochs_trained) == 2  # the second and third epoch only

    untimed = lambda history: [{k: v for k, v in h.items() if "seconds" not in k}  # noqa: E731
                               for h in history]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert untimed(resumed["history"]) == untimed(straight["history"])
    final = [tree.load_params(out / "mlp_checkpoint.npz")
             for out in (tmp_path / "straight", tmp_path / "resumed")]
    for straight_leaf, resumed_leaf in zip(*(tree.tree_leaves(state["params"]) for state in final)):
        np.testing.assert_array_equal(straight_leaf, resumed_leaf)
    # --skip-training reads the checkpoint and the result file back without training
    skipped = run(tmp_path / "resumed", "--skip-training")
    assert skipped == json.loads((tmp_path / "resumed" / "mlp_result.json").read_text())


def test_adjoint_memory_is_flat_in_the_steps_and_backprop_memory_grows(tmp_path):
    config = tutorial.parse_args(["--quick", "--memory-steps", "2,16", "--memory-batch",
                                  "4"]).config
    data = tutorial.load_data(config)
    params = tutorial.init_model("odenet", np.random.default_rng(0), 8)
    adjoint = tutorial.memory_rows("odenet", params, data, config)
    backprop = tutorial.memory_rows("rknet", params, data, config)
    assert adjoint[16] < 1.5 * adjoint[2]
    assert backprop[16] > 3 * backprop[2]


def test_odenet_gradient_of_one_batch_matches_finite_differences():
    """float64, 4 channels, 3 digits, a fixed-step rk4 (64 steps) so that the finite differences
    are smooth (an adaptive solver's step choices jump with the parameters).

    Backprop through the steps is the exact derivative of this discrete forward pass, so it
    matches to ~1e-7. The adjoint solves the continuous adjoint ODE (Algorithm 1) with the
    same rk4; across the ReLU kinks rk4 loses its order and the two differ by ~1e-3 here.
    """
    to64 = lambda tree: nn.tree_map(lambda leaf: backend.asarray(leaf, dtype="float64"),  # noqa
                                    tree)
    params = to64(tutorial.init_model("odenet", np.random.default_rng(1), 4))
    x_train, y_train, _, _ = tutorial.load_data(tutorial.QUICK_CONFIG)
    images, labels = backend.asarray(x_train[:3].astype("float64")), y_train[:3]
    solver = {**tutorial.SOLVER, "method": "rk4", "step_size": 1 / 64}
    # A few entries from the stem, the ODE function (both convolutions, a norm) and the head.
    picks = [("stem", "conv1", "w", (0, 0, 1, 1)), ("ode", "conv1", "w", (1, 0, 0, 2)),
             ("ode", "conv2", "w", (2, 3, 1, 0)), ("ode", "norm3", "scale", (1,)),
             ("ode", "conv2", "b", (0,)), ("head", "linear", "w", (3, 2))]

    def with_entries(values):
        tree = nn.tree_map(lambda leaf: leaf, params)  # a copy of the dict structure
        for (a, b, c, index), value in zip(picks, values):
            leaf = tree[a][b][c] = tree[a][b][c].copy()
            leaf[index] = value
        return tree

    def picked_grad(grad_mode):
        _, grads = tutorial.loss_and_grad(params, "odenet", images, labels,
                                          {**solver, "grad": grad_mode})
        return np.array([grads[a][b][c][index] for a, b, c, index in picks])

    start = np.array([params[a][b][c][index] for a, b, c, index in picks])
    numeric = numerical_grad(
        lambda v: tutorial.loss_fn(with_entries(v), "odenet", images, labels, solver),
        start, eps=1e-7)
    np.testing.assert_allclose(picked_grad("backprop"), numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(picked_grad("adjoint"), numeric, rtol=5e-3, atol=1e-6)


def test_figure3_sweep_by_scipy_lsoda_writes_its_own_files_without_a_seminorm(quick_run):
    _, out = quick_run("mnist_odenet")
    outcome = tutorial.main(["--quick", "--quiet", "--out", str(out), "--skip-training",
                             "--no-memory", "--sweep-method", "scipy:LSODA", "--sweep-digits", "2"])
    sweep = outcome["sweep"]
    assert all(r["nfe_forward"] > 0 and r["nfe_backward"] > 0 for r in sweep)
    assert all(r["nfe_backward_seminorm"] is None for r in sweep)
    names = {path.name for path in outcome["files"]}
    assert {"figure3c_backward_vs_forward_nfe_scipy-LSODA.png",
            "figure3_nfe_scipy-LSODA.md"} <= names
    text = (out / "figure3_nfe_scipy-LSODA.md").read_text()
    assert "scipy:LSODA" in text and "seminorm" not in text
    # the training solver's sweep keeps its files
    assert (out / "figure3c_backward_vs_forward_nfe.png").exists()
