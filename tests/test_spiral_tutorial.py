"""The spiral tutorial end to end: quick runs learn, and the linear fit recovers A."""
import pytest
from scripts import load_script


@pytest.fixture(scope="module")
def spiral():
    return load_script("tutorials/spiral.py")


@pytest.mark.parametrize("experiment", ["linear", "mlp", "cubic"])
def test_quick_run_lowers_the_loss(spiral, experiment, tmp_path):
    iters = {"linear": 40, "mlp": 40, "cubic": 60}[experiment]
    [result] = spiral.main(["--experiment", experiment, "--iters", str(iters), "--quiet",
                            "--no-plots", "--out", str(tmp_path)])
    assert result["check_loss_after"] < 0.5 * result["check_loss_before"]
    assert result["nfe_forward"] > 0 and result["nfe_backward"] > 0


def test_linear_experiment_recovers_the_matrix(spiral, tmp_path):
    [result] = spiral.main(["--experiment", "linear", "--iters", "500", "--quiet",
                            "--no-plots", "--out", str(tmp_path)])
    assert result["max_abs_error_A"] < 0.05


def test_quick_run_writes_every_picture(spiral, tmp_path):
    [result] = spiral.main(["--experiment", "linear", "--quick", "--quiet", "--out",
                            str(tmp_path)])
    names = sorted(path.name for path in result["files"])
    assert names == ["linear_field.png", "linear_loss.png", "linear_phase.png",
                     "linear_training.gif"]
    assert all(path.stat().st_size > 1000 for path in result["files"])


def test_backprop_mode_trains_too(spiral, tmp_path):
    [result] = spiral.main(["--experiment", "linear", "--iters", "60", "--grad", "backprop",
                            "--quiet", "--no-plots", "--out", str(tmp_path)])
    assert result["check_loss_after"] < 0.5 * result["check_loss_before"]
    assert result["nfe_backward"] == 0  # autograd's backward pass evaluates nothing
