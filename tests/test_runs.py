"""Run management: checkpoints that resume a training exactly, result files, the command line."""
import numpy
import pytest
from autograd import grad

from minode import ops, optim, runs

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
