"""The spiral tutorial end to end: quick runs learn, the linear fit recovers A, every picture is
written, the solver options reach odeint, an interrupted run resumes to the numbers of an
uninterrupted one, Ctrl-C says how to resume, and a resume with other options is refused."""
import numpy
import pytest
from scripts import interrupted_at_call, load_script, stopped_by_ctrl_c

from minode import runs

PICTURES = ["field.png", "loss.png", "phase.png", "training.gif"]


@pytest.fixture(scope="module")
def spiral():
    return load_script("tutorials/spiral.py")


def run(spiral, out, *options):
    return spiral.main([*options, "--quiet", "--out", str(out)])


@pytest.mark.parametrize("experiment", ["linear", "mlp", "cubic"])
def test_quick_run_lowers_the_loss(spiral, experiment, tmp_path):
    iters = {"linear": 40, "mlp": 40, "cubic": 60}[experiment]
    [result] = run(spiral, tmp_path, "--experiment", experiment, "--iters", str(iters),
                   "--no-plots")
    assert result["check_loss_after"] < 0.5 * result["check_loss_before"]
    assert result["nfe_forward"] > 0 and result["nfe_backward"] > 0


def test_linear_experiment_recovers_the_matrix(spiral, tmp_path):
    [result] = run(spiral, tmp_path, "--experiment", "linear", "--iters", "500", "--no-plots")
    assert result["max_abs_error_A"] < 0.05


def test_quick_run_writes_every_picture_result_file_and_the_table(quick_run):
    results, out = quick_run("spiral")
    for result in results:
        name = result["experiment"]
        assert sorted(path.name for path in result["files"]) == [f"{name}_{p}" for p in PICTURES]
        assert all(path.stat().st_size > 1000 for path in result["files"])
        assert (out / f"{name}_result.json").exists()
    table = (out / "table.md").read_text()
    assert all(f"| {name} | 20 |" in table for name in ("linear", "mlp", "cubic"))


def test_backprop_mode_trains_too(spiral, tmp_path):
    [result] = run(spiral, tmp_path, "--experiment", "linear", "--iters", "60", "--grad",
                   "backprop", "--no-plots")
    assert result["check_loss_after"] < 0.5 * result["check_loss_before"]
    assert result["nfe_backward"] == 0  # autograd's backward pass evaluates nothing


def test_a_fixed_step_method_trains_with_the_given_step_size(spiral, tmp_path):
    [result] = run(spiral, tmp_path, "--experiment", "linear", "--iters", "40", "--method",
                   "rk4", "--step-size", "0.05", "--no-plots")
    assert result["check_loss_after"] < 0.5 * result["check_loss_before"]
    # the observations are 6.29 * 5 / 199 ~ 0.158 apart: each interval takes ceil(0.158 / 0.05)
    # = 4 rk4 steps of 4 evaluations, so every forward solve costs a multiple of 16
    assert round(result["nfe_forward"] * result["iters"]) % 16 == 0


def test_a_fixed_step_method_without_a_step_size_is_refused_before_training(spiral, capsys):
    with pytest.raises(SystemExit) as stop:
        spiral.main(["--method", "rk4", "--quiet", "--no-plots"])
    assert stop.value.code == 2
    assert "--step-size" in capsys.readouterr().err


def train_linear(spiral, checkpoint, resume=False):
    """30 iterations of the linear experiment, snapshots every 5, as `main` sets it up."""
    experiment = spiral.EXPERIMENTS["linear"]
    rng = numpy.random.default_rng(0)
    data = spiral.make_data(experiment, rng)
    params = spiral.init_linear_model(rng)
    return spiral.train(experiment, data, params, rng, spiral.SOLVER, checkpoint, iters=30,
                        snapshot_every=5, resume=resume, quiet=True)


def test_an_interrupted_and_resumed_run_repeats_the_uninterrupted_one(spiral, tmp_path,
                                                                     monkeypatch):
    straight = train_linear(spiral, runs.Checkpoint(tmp_path / "straight.npz", every=10))
    sample_windows = spiral.sample_windows

    def interrupt_at_iteration_17(experiment, data, rng, iteration):
        if iteration == 17:  # after the draw: the generator has moved past the saved state
            sample_windows(experiment, data, rng, iteration)
            raise KeyboardInterrupt("simulated Ctrl-C")
        return sample_windows(experiment, data, rng, iteration)

    checkpoint = runs.Checkpoint(tmp_path / "resumed.npz", every=10)
    monkeypatch.setattr(spiral, "sample_windows", interrupt_at_iteration_17)
    with pytest.raises(runs.TrainingInterrupted):
        train_linear(spiral, checkpoint)
    assert checkpoint.load()["step"] == 17  # the last completed iteration, not the last save
    drawn = []  # the iterations the resumed run trains

    def counted(experiment, data, rng, iteration):
        drawn.append(iteration)
        return sample_windows(experiment, data, rng, iteration)

    monkeypatch.setattr(spiral, "sample_windows", counted)
    resumed = train_linear(spiral, checkpoint, resume=True)
    assert drawn == [spiral.CURRICULUM_ITERS // 4] + list(range(17, 30))  # check batch first
    numpy.testing.assert_array_equal(resumed["params"], straight["params"])
    assert resumed["rng"] == straight["rng"] and resumed["step"] == 30
    for key in ("losses", "nfe_forward", "nfe_backward", "check_loss_before",
                "check_loss_after"):
        assert resumed["log"][key] == straight["log"][key]
    snapshots = [(s[0] for s in state["log"]["snapshots"]) for state in (straight, resumed)]
    assert list(snapshots[0]) == list(snapshots[1]) == [0, 5, 10, 15, 20, 25, 29]
    for (_, path), (_, resumed_path) in zip(straight["log"]["snapshots"],
                                           resumed["log"]["snapshots"]):
        numpy.testing.assert_array_equal(path, resumed_path)


def test_ctrl_c_saves_the_last_completed_iteration_and_prints_how_to_resume(spiral, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setattr(spiral, "loss_and_grad", interrupted_at_call(spiral.loss_and_grad, 3))
    stopped_by_ctrl_c(spiral.main, ["--experiment", "linear", "--quick", "--quiet", "--no-plots",
                                    "--out", str(tmp_path)], capsys)
    assert runs.Checkpoint(tmp_path / "linear_checkpoint.npz").load()["step"] == 2


@pytest.mark.parametrize("option, value", [("--seed", "1"), ("--rtol", "1e-6")])
def test_a_resume_with_other_options_is_refused_naming_them(spiral, quick_run, option, value):
    _, out = quick_run("spiral")
    with pytest.raises(ValueError, match=option.lstrip("-")):
        spiral.main(["--quick", "--quiet", "--out", str(out), "--resume", option, value])
