"""`odeint` with a 2-D t, one time grid per sample (`minode.time_grids`): values against B separate
solves, gradients w.r.t. y0, params and every entry of t three ways, bad input.

All in float64. The adaptive solves run at rtol = atol = 1e-10: values agree with the separate
solves to about 5e-10, and gradients with central differences (h = 1e-6) to about 1.5e-6
(`relative_error`, entry by entry; the worst is a parameter entry, where the finite differences
themselves carry the adaptive step sequence's jumps); the bounds leave a factor of about 7.
"""
import numpy
import pytest
from autograd import grad
from autograd.tracer import getval

import strict_backend as strict
from minode import SolverStats, backend, odeint, ops
from minode.gradcheck import compare_gradients, relative_error
from minode.tree import tree_leaves, tree_map

TIGHT = dict(rtol=1e-10, atol=1e-10)

# Three samples starting at different times, with their own spacings.
TIMES = numpy.array([[0.0, 0.3, 0.5, 1.1],
                     [0.2, 0.25, 0.9, 1.0],
                     [-0.4, 0.1, 0.6, 1.4]])
# The same samples, then a shared stretch of three times (as a shared future grid).
SHARED_END = numpy.concatenate([TIMES[:, :3], numpy.tile([1.1, 1.3, 1.6], (3, 1))], axis=1)
# Every row alike.
ALIKE = numpy.tile(TIMES[0], (3, 1))
GRIDS = {"own times": TIMES, "decreasing": -TIMES[:, ::-1], "shared end": SHARED_END,
         "alike": ALIKE}


def field(y, t, params):
    """A non-autonomous tanh MLP: the time enters through tanh(t) * c."""
    hidden = ops.tanh(ops.matmul(y, params["W1"]) + params["b1"])
    return ops.matmul(hidden, params["W2"]) + ops.tanh(t) * params["c"]


def problem(seed=0, batch=3, dim=2, hidden=5):
    rng = numpy.random.default_rng(seed)
    params = {"W1": rng.normal(0, 0.6, (dim, hidden)), "b1": rng.normal(0, 0.1, hidden),
              "W2": rng.normal(0, 0.6, (hidden, dim)), "c": rng.normal(0, 0.5, dim)}
    return rng.normal(size=(batch, dim)), params


def separate_solves(y0, t, params, **options):
    """(T, B, D): sample b solved alone on its own 1-D grid."""
    return numpy.stack([odeint(field, y0[b:b + 1], t[b], params, **options)[:, 0]
                        for b in range(len(t))], axis=1)


def weighted_loss(shape, seed=1):
    weights = numpy.random.default_rng(seed).normal(size=shape)
    return lambda ys: ops.sum(backend.asarray(weights) * ys) + 0.5 * ops.sum(ys * ys)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("times", GRIDS.values(), ids=GRIDS.keys())
@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
def test_values_match_separate_solves_to_the_tolerance(times, method):
    y0, params = problem()
    ys = odeint(field, y0, times, params, method=method, **TIGHT)
    assert ys.shape == (times.shape[1], 3, 2)
    numpy.testing.assert_array_equal(ys[0], y0)
    expected = separate_solves(y0, times, params, method=method, **TIGHT)
    numpy.testing.assert_allclose(ys, expected, rtol=0, atol=1e-8)


def test_fixed_step_values_match_separate_solves_to_the_discretisation_error():
    y0, params = problem()
    ys = odeint(field, y0, TIMES, params, method="rk4", step_size=0.01)
    expected = separate_solves(y0, TIMES, params, **TIGHT)
    numpy.testing.assert_allclose(ys, expected, rtol=0, atol=1e-9)


def test_fixed_step_size_bounds_the_step_of_the_longest_row():
    y0, params = problem()
    stats = SolverStats()
    odeint(field, y0, TIMES, params, method="euler", step_size=0.1, stats=stats)
    # Interval i takes ceil(max_b |t[b, i+1] - t[b, i]| / 0.1) steps: 5 + 7 + 8.
    assert stats.forward.steps == 5 + 7 + 8


def test_func_receives_one_time_per_sample_broadcastable_against_y():
    seen = []

    def recording(y, t, params):
        seen.append((t.shape, t.dtype, numpy.array(t).ravel().copy()))
        return -y

    y0 = numpy.ones((3, 2, 4), dtype="float32")
    ys = odeint(recording, y0, TIMES, method="rk4", step_size=1.0)
    assert ys.shape == (4, 3, 2, 4) and ys.dtype == numpy.float32
    assert all(shape == (3, 1, 1) and dtype == numpy.float32 for shape, dtype, _ in seen)
    numpy.testing.assert_allclose(seen[0][2], TIMES[:, 0], rtol=1e-7)  # the first stage


def test_times_shared_by_every_row_are_one_dense_output_solve():
    """Rows that share every time cost what the 1-D solve costs; a shared stretch of times
    costs one solve, not one per interval (dopri5 needs 1 + 6 evaluations per interval)."""
    y0, params = problem()
    alike, one_grid = SolverStats(), SolverStats()
    odeint(field, y0, ALIKE, params, stats=alike)
    odeint(field, y0, ALIKE[0], params, stats=one_grid)
    assert alike.forward == one_grid.forward
    long_shared_end = numpy.concatenate([TIMES[:, :3], numpy.tile(numpy.linspace(1.1, 2.0, 40),
                                                                  (3, 1))], axis=1)
    stats = SolverStats()
    odeint(field, y0, long_shared_end, params, stats=stats)
    assert stats.forward.nfe < 7 * 39


def test_one_row_is_a_one_dimensional_solve():
    y0, params = problem(batch=1)
    ys = odeint(field, y0, TIMES[:1], params, **TIGHT)
    numpy.testing.assert_allclose(ys, odeint(field, y0, TIMES[0], params, **TIGHT), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Gradients w.r.t. y0, params and every entry of the 2-D t
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("times", GRIDS.values(), ids=GRIDS.keys())
def test_adaptive_gradients_agree_three_ways(times):
    y0, params = problem()
    comparison = compare_gradients(weighted_loss((times.shape[1], 3, 2)), field, y0, times,
                                   params, **TIGHT)
    assert comparison.max_relative_error() < 1e-5, comparison.format_table()
    assert numpy.abs(comparison.gradients["adjoint"]["t"]).min() > 1e-3  # every t entry counts


def test_fixed_step_backprop_is_the_derivative_of_the_discrete_solution():
    y0, params = problem()
    # 0.045 divides no interval's longest span exactly: a perturbation of t by the central
    # difference's h changes no interval's number of steps.
    comparison = compare_gradients(weighted_loss((4, 3, 2)), field, y0, TIMES, params,
                                   method="rk4", step_size=0.045)
    pair = ("backprop", "finite differences")
    assert comparison.max_relative_error(pair) < 1e-7, comparison.format_table()
    pair = ("adjoint", "finite differences")
    assert comparison.max_relative_error(pair) < 1e-5, comparison.format_table()


def test_time_gradient_of_an_inner_output_is_the_vector_field_there():
    """dL/dt[b, i] = dL/dy(t[b, i]) . f(y(t[b, i]), t[b, i]) for i > 0: moving an output time
    moves only that output (the 1-D rule of `minode.adjoint`, now row by row)."""
    y0, params = problem()
    weights = numpy.random.default_rng(2).normal(size=(4, 3, 2))
    ys = odeint(field, y0, TIMES, params, **TIGHT)
    for grad_mode in ("adjoint", "backprop"):
        grad_t = grad(lambda t: ops.sum(weights * odeint(field, y0, t, params, grad=grad_mode,
                                                         **TIGHT)))(TIMES)
        for i in range(1, 4):
            slope = field(ys[i], TIMES[:, i:i + 1], params)
            numpy.testing.assert_allclose(grad_t[:, i], (weights[i] * slope).sum(axis=1),
                                          rtol=1e-7)


@pytest.mark.parametrize("times", [TIMES, SHARED_END], ids=["own times", "shared end"])
def test_gradients_on_the_strict_backend_equal_numpy(times, strict_backend):
    y0, params = problem()
    loss = weighted_loss((times.shape[1], 3, 2))

    def gradients(y0, t, params, grad_mode):
        return grad(lambda *args: loss(odeint(field, *args, grad=grad_mode, rtol=1e-8,
                                              atol=1e-8)), (0, 1, 2))(y0, t, params)

    for grad_mode in ("adjoint", "backprop"):
        backend.set_backend("numpy")
        expected = gradients(y0, times, params, grad_mode)
        backend.set_backend("strict")
        got = gradients(backend.asarray(y0), backend.asarray(times),
                        {key: backend.asarray(value) for key, value in params.items()},
                        grad_mode)
        assert all(type(leaf) is strict.StrictArray for leaf in tree_leaves(got))
        got = tree_map(backend.to_numpy, got)
        backend.set_backend("numpy")
        assert relative_error(got, expected) < 1e-12


# ---------------------------------------------------------------------------------------------
# Bad input: each error names the argument
# ---------------------------------------------------------------------------------------------

def decay(y, t, params):
    return -y


@pytest.mark.parametrize("t, message", [
    ([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]], r"^the rows of t must all run in the same direction"),
    ([[0.0, 1.0, 2.0], [0.0, 2.0, 1.0]], r"^each row of t must be strictly .* got row 1"),
    ([[0.0, 1.0, 1.0], [0.0, 1.0, 2.0]], r"^each row of t must be strictly .* got row 0"),
    ([[0.0, numpy.nan, 2.0], [0.0, 1.0, 2.0]], r"^t must be finite, got row 0"),
    ([[0.0, 1.0, numpy.inf], [0.0, 1.0, 2.0]], r"^t must be finite, got row 0"),
    ([[0.0], [1.0]], r"^a 2-D t .* needs at least 2 times per row"),
    (numpy.array([[0, 1], [0, 2]]), r"^t must be a floating-point array"),
])
def test_bad_two_dimensional_t_is_rejected(t, message):
    with pytest.raises(ValueError, match=message):
        odeint(decay, numpy.ones((2, 3)), t)


def test_batch_size_must_match_y0():
    with pytest.raises(ValueError, match=r"^t has 3 rows .* y0 has a batch axis of size 2"):
        odeint(decay, numpy.ones((2, 3)), TIMES)


def test_scalar_state_y0_is_rejected_with_a_two_dimensional_t():
    with pytest.raises(ValueError, match=r"^with a 2-D t .* y0 must have shape \(B, \.\.\.\)"):
        odeint(decay, numpy.ones(3), TIMES)


@pytest.mark.parametrize("options, name", [({"method": "rk4", "step_size": -0.1}, "step_size"),
                                           ({"min_step": -1.0}, "min_step"),
                                           ({"first_step": 0.0}, "first_step")])
def test_bad_options_name_the_argument(options, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        odeint(decay, numpy.ones((3, 2)), TIMES, **options)


def test_first_step_replaces_hairers_estimate():
    """With ``first_step`` an adaptive solve starts without the estimate's extra evaluation:
    dopri5 then evaluates f once at the start and 6 times per (accepted or rejected) step."""
    y0, params = problem()
    stats = SolverStats()
    ys = odeint(field, y0, TIMES[0], params, first_step=0.01, stats=stats, **TIGHT)
    forward = stats.forward
    assert forward.nfe == 1 + 6 * (forward.steps + forward.rejected)
    numpy.testing.assert_allclose(ys, odeint(field, y0, TIMES[0], params, **TIGHT), atol=1e-8)


@pytest.mark.parametrize("mode", ["adjoint", "backprop"])
def test_func_is_never_evaluated_outside_a_rows_interval(mode):
    """Row 0's start + span rounds an ulp past its end (across t = 0); func must not see it."""
    t = numpy.array([[-0.5056378869683275, 5.56e-05], [-1.0, 1.0]])
    outside = []

    def guarded(y, s, params):
        value = numpy.asarray(getval(s))
        if numpy.any(value > t[:, 1:]) or numpy.any(value < t[:, :1]):
            outside.append(value.ravel())
        return -y
    grad(lambda t: ops.sum(odeint(guarded, numpy.ones((2, 1)), t, grad=mode)))(t)
    assert outside == []
