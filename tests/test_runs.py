"""Run management: checkpoints that resume a training exactly, result files, the command line."""
import signal
import sys
import time

import numpy
import pytest
from autograd import grad

from minode import ops, optim, runs
from minode.tree import save_params

TARGET = numpy.array([1.0, -2.0, 3.0])


def train(checkpoint, steps, resume, crash_at=None):
    """Adam on a noisy quadratic; the noise of step k comes from default_rng([0, k])."""
    params = {"w": numpy.zeros(3)}
    optimizer = optim.Adam(lr=0.1)
    fresh = {"step": 0, "params": params, "opt": optimizer.init(params), "log": {"losses": []}}
    state = checkpoint.load_or(fresh, resume)
    while state["step"] < steps:
        if state["step"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        noise = numpy.random.default_rng([0, state["step"]]).normal(size=3)
        loss = lambda p: ops.sum(ops.square(p["w"] - TARGET - 0.1 * noise))  # noqa: E731
        state["log"]["losses"].append(float(loss(state["params"])))
        state["params"], state["opt"] = optimizer.update(state["params"],
                                                         grad(loss)(state["params"]),
                                                         state["opt"])
        state["step"] += 1
        checkpoint.save_if_due(state, steps)
    return state


def test_a_crashed_and_resumed_run_repeats_the_uninterrupted_one(tmp_path):
    straight = train(runs.Checkpoint(tmp_path / "straight.npz", every=3), 10, resume=False)
    checkpoint = runs.Checkpoint(tmp_path / "resumed.npz", every=3)
    with pytest.raises(KeyboardInterrupt):
        train(checkpoint, 10, resume=False, crash_at=7)
    assert checkpoint.load()["step"] == 6
    resumed = train(checkpoint, 10, resume=True)
    assert resumed["step"] == 10
    numpy.testing.assert_array_equal(resumed["params"]["w"], straight["params"]["w"])
    numpy.testing.assert_array_equal(resumed["opt"]["m"]["w"], straight["opt"]["m"]["w"])
    assert resumed["log"]["losses"] == straight["log"]["losses"]
    assert resumed["opt"]["step"] == 10 and type(resumed["opt"]["step"]) is int


def test_load_or_starts_fresh_without_resume_or_file_and_refuses_another_model(tmp_path):
    checkpoint = runs.Checkpoint(tmp_path / "c.npz")
    fresh = {"step": 0, "params": {"w": numpy.zeros(2)}, "log": {}}
    assert checkpoint.load_or(fresh, resume=True) is fresh  # no file yet
    checkpoint.save({"step": 4, "params": {"w": numpy.ones(2)}, "log": {"losses": [1.0]}})
    assert checkpoint.load_or(fresh, resume=False) is fresh
    assert checkpoint.load_or(fresh, resume=True)["step"] == 4
    with pytest.raises(ValueError, match=r"checkpoint\['params'\]\['w'\].*shape \(2,\)"):
        checkpoint.load_or({**fresh, "params": {"w": numpy.zeros(5)}}, resume=True)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        runs.Checkpoint(tmp_path / "c.npz", every=0)


def test_results_record_the_command_and_earlier_results_complete_a_table(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setattr("sys.argv", ["tutorials/x.py", "--model", "a"])
    path = runs.write_result(tmp_path, "a", {"error": 0.5})
    assert path == runs.result_path(tmp_path, "a")
    assert runs.read_result(tmp_path, "a") == {
        "error": 0.5, "command": "OPENBLAS_NUM_THREADS=1 python tutorials/x.py --model a"}
    assert runs.read_result(tmp_path, "b") is None
    collected = runs.collect_results(tmp_path, ["b", "a", "c"], {"b": {"error": 0.1}})
    assert list(collected) == ["b", "a"]
    assert collected["a"]["error"] == 0.5 and collected["b"] == {"error": 0.1}


def test_resume_with_other_options_is_refused_naming_the_fields(tmp_path):
    path = tmp_path / "run.npz"
    train(runs.Checkpoint(path, every=2, config={"seed": 0, "lr": 0.1}), 4, resume=False)
    other = runs.Checkpoint(path, every=2, config={"seed": 1, "lr": 0.1, "width": 8})
    with pytest.raises(ValueError, match=r"seed: checkpoint 0, this run 1; width: checkpoint "
                                         r"None, this run 8\)\. Resume with the same options"):
        train(other, 6, resume=True)
    same = runs.Checkpoint(path, every=2, config={"lr": 0.1, "seed": 0})
    assert train(same, 6, resume=True)["step"] == 6
    assert same.saved_config() == {"lr": 0.1, "seed": 0}


def test_a_checkpoint_without_a_configuration_is_refused_on_resume(tmp_path):
    path = tmp_path / "old.npz"
    save_params(path, {"step": 1, "params": {"w": numpy.zeros(3)}})
    with pytest.raises(ValueError, match="records no configuration"):
        runs.Checkpoint(path).load_or({"step": 0, "params": {"w": numpy.zeros(3)}}, True)


def test_ctrl_c_saves_the_last_completed_step_and_says_how_to_continue(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["tutorials/x.py", "--quick"])
    checkpoint = runs.Checkpoint(tmp_path / "run.npz", every=100)
    state = {"step": 0, "params": {"w": numpy.zeros(3)}}
    with pytest.raises(runs.TrainingInterrupted) as stop:
        with checkpoint.saved_on_interrupt(lambda: state, total=10):
            for step in range(10):
                if step == 3:
                    raise KeyboardInterrupt
                with runs.deferred_interrupt():
                    state = {"step": step + 1, "params": {"w": state["params"]["w"] + 1}}
    assert str(stop.value) == (f"stopped by Ctrl-C after step 3 of 10; the checkpoint "
                               f"{checkpoint.path} holds it; continue with: python "
                               "tutorials/x.py --quick --resume")
    assert stop.value._render_traceback_() == [str(stop.value)]
    saved = checkpoint.load()
    assert saved["step"] == 3
    numpy.testing.assert_array_equal(saved["params"]["w"], numpy.full(3, 3.0))


def test_ctrl_c_inside_a_deferred_block_takes_effect_at_its_end():
    # Python's own handler, as in an interactive process, whatever this one inherited (a
    # background job starts with Ctrl-C ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with runs.deferred_interrupt():
                signal.raise_signal(signal.SIGINT)
                done.append("the rest of the block")
        assert done == ["the rest of the block"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_process_that_ignores_ctrl_c_keeps_ignoring_it_in_a_deferred_block():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with runs.deferred_interrupt():
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_run_script_turns_an_interrupt_into_one_line_and_status_130(capsys, tmp_path):
    def main():
        raise runs.TrainingInterrupted(tmp_path / "c.npz", 2, 5)

    with pytest.raises(SystemExit) as exit_status:
        runs.run_script(main)
    assert exit_status.value.code == 130
    assert capsys.readouterr().err.count("\n") == 1


def test_progress_redraws_rarely_when_stderr_is_a_file(tmp_path):
    with open(tmp_path / "stderr.txt", "w") as file:
        bar = runs.progress(range(300), file=file, desc="steps")
        for _ in bar:  # 0.6 s: a terminal's bar would redraw about 6 times
            time.sleep(0.002)
            bar.set_postfix(loss="1.0", refresh=False)
        bar.close()
    assert (tmp_path / "stderr.txt").read_text().count("\r") <= 3


def test_in_a_notebook_results_record_the_notebook_and_its_options(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    runs.write_result(tmp_path, "x", {"rmse": 0.5}, options={"quick": True, "out": tmp_path})
    saved = runs.read_result(tmp_path, "x")
    assert saved["command"].startswith("Jupyter notebook in ")
    assert saved["options"] == {"quick": True, "out": str(tmp_path)}


def test_a_configuration_that_is_not_a_dict_is_refused(tmp_path):
    with pytest.raises(TypeError, match="config must be a dict .* got list"):
        runs.Checkpoint(tmp_path / "run.npz", config=["seed", 0])
