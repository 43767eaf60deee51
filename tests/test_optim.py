"""Optimizers and learning-rate schedules."""
import numpy
import pytest
from autograd import grad
from numpy.testing import assert_allclose

import strict_backend as strict
from minode import backend, ops, optim
from minode.tree import tree_leaves, tree_map

TARGET = {"w": numpy.array([1.0, -2.0, 3.0]), "layers": [numpy.array([[0.5, -0.5], [2.0, 0.0]])]}
CURVATURE = {"w": numpy.array([1.0, 4.0, 0.5]), "layers": [numpy.array([[2.0, 1.0], [1.0, 3.0]])]}


def quadratic(params):
    """sum of curvature * (params - target)**2 / 2 over the tree: minimum 0 at TARGET."""
    leaves = zip(tree_leaves(params), tree_leaves(CURVATURE), tree_leaves(TARGET))
    return 0.5 * sum(ops.sum(ops.multiply(c, ops.square(ops.subtract(p, t))))
                     for p, c, t in leaves)


def distance_to_target(params):
    return max(float(abs(numpy.asarray(backend.to_numpy(p)) - t).max())
               for p, t in zip(tree_leaves(params), tree_leaves(TARGET)))


@pytest.mark.parametrize("optimizer, steps", [
    (optim.SGD(lr=0.05, momentum=0.9), 300),
    (optim.SGD(lr=0.1, momentum=0.0), 300),
    (optim.RMSprop(lr=optim.step_decay(0.05, 0.5, every=100)), 600),
    (optim.Adam(lr=optim.step_decay(0.1, 0.3, every=200)), 800),
], ids=["sgd-momentum", "sgd", "rmsprop", "adam"])
def test_optimizer_minimises_a_quadratic(optimizer, steps):
    params = tree_map(numpy.zeros_like, TARGET)
    state = optimizer.init(params)
    for _ in range(steps):
        params, state = optimizer.update(params, grad(quadratic)(params), state)
    assert state["step"] == steps
    assert distance_to_target(params) < 1e-3


def test_optimizers_run_on_the_strict_backend(strict_backend):
    params = tree_map(lambda t: backend.xp.zeros(t.shape), TARGET)
    for optimizer in (optim.SGD(0.05), optim.RMSprop(0.01), optim.Adam(0.1)):
        state = optimizer.init(params)
        new_params, state = optimizer.update(params, tree_map(backend.asarray, TARGET), state)
        assert all(type(x) is strict.StrictArray for x in tree_leaves((new_params, state)[0]))


def test_adam_first_step_moves_each_entry_by_lr_against_the_gradient_sign():
    params, grads = {"p": numpy.zeros(3)}, {"p": numpy.array([0.3, -2.0, 1e-3])}
    optimizer = optim.Adam(lr=0.01)
    new_params, state = optimizer.update(params, grads, optimizer.init(params))
    assert_allclose(new_params["p"], -0.01 * numpy.sign(grads["p"]), rtol=1e-4)
    assert_allclose(params["p"], 0)  # the inputs are not modified
    assert state["step"] == 1


def test_step_decay_schedule_values():
    schedule = optim.step_decay(0.1, 0.5, every=3)
    assert [schedule(step) for step in range(8)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert optim.constant(0.3)(1000) == 0.3


def test_sgd_applies_the_schedule_at_each_step():
    optimizer = optim.SGD(lr=optim.step_decay(1.0, 0.1, every=2), momentum=0.0)
    params, state, positions = {"p": numpy.zeros(1)}, None, []
    state = optimizer.init(params)
    for _ in range(4):
        params, state = optimizer.update(params, {"p": numpy.ones(1)}, state)
        positions.append(float(params["p"][0]))
    assert positions == pytest.approx([-1.0, -2.0, -2.1, -2.2])


@pytest.mark.parametrize("make", [
    lambda: optim.SGD(lr=-1.0), lambda: optim.SGD(lr=0.1, momentum=1.0),
    lambda: optim.RMSprop(lr=0.1, decay=1.5), lambda: optim.Adam(b2=1.0),
    lambda: optim.Adam(eps=0.0), lambda: optim.step_decay(0.1, 0.5, every=0),
])
def test_invalid_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_update_with_a_foreign_state_raises_value_error():
    with pytest.raises(ValueError, match=r"missing \['m', 'v'\].*Adam"):
        optim.Adam().update({"p": numpy.zeros(1)}, {"p": numpy.ones(1)}, {"step": 0})


@pytest.mark.parametrize("grads, message", [
    ({"w": numpy.ones(1), "b": numpy.ones(2)},
     r"grads does not match params at grads\['w'\]: grads has shape \(1,\), params has shape "
     r"\(3,\)"),
    ({"w": numpy.ones((3, 1)), "b": numpy.ones(2)}, r"at grads\['w'\].*shape \(3, 1\)"),
    ({"w": numpy.ones(3)}, r"at grads: grads has keys \['w'\], params has \['b', 'w'\]"),
    ([numpy.ones(3), numpy.ones(2)], "at grads: grads has list, params has dict"),
])
def test_adam_refuses_grads_not_shaped_like_params(grads, message):
    # A (1,) or (3, 1) gradient would broadcast against a (3,) parameter without an error.
    params = {"w": numpy.zeros(3), "b": numpy.zeros(2)}
    adam = optim.Adam()
    with pytest.raises(ValueError, match=message):
        adam.update(params, grads, adam.init(params))


@pytest.mark.parametrize("make", [optim.SGD, optim.RMSprop, optim.Adam])
def test_update_refuses_a_state_made_for_other_params(make):
    optimizer = make(lr=0.1)
    state = optimizer.init({"w": numpy.zeros(2)})
    with pytest.raises(ValueError, match=r"state\['\w+'\] does not match params at "
                                         r"state\['\w+'\]\['w'\].*shape \(2,\).*shape \(3,\)"):
        optimizer.update({"w": numpy.zeros(3)}, {"w": numpy.ones(3)}, state)
