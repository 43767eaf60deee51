"""Gradients of odeint three ways: the adjoint (Chen et al. 2018, Algorithm 1), backprop through
the solver ("RK-Net") and central finite differences, w.r.t. y0, every t_i and params.

All in float64. Adaptive solves run at rtol = atol = 1e-10, so each gradient is accurate to
about 1e-9 relative to the largest entry; central differences (h = 1e-6) add O(h^2) truncation
and about 1e-16 / h = 1e-10 rounding. Errors are measured entry by entry (`relative_error`,
against the entry itself, or 1e-6 of the largest entry of that argument if smaller), so a small
entry shows the solver error magnified: the worst here is 5e-6 (a parameter entry 1000 times
smaller than the largest, on the decreasing grid). The bound 1e-5 still catches any wrong sign,
missing term or off-by-one interval, which give errors of order 1.
"""
import numpy
import pytest
from autograd import grad

import minode
from minode import adjoint as adjoint_module
from minode import ops
from minode.gradcheck import check_grads, compare_gradients, relative_error

TIGHT = dict(rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Problems: (func, y0, t, params, loss_of_ys)
# ---------------------------------------------------------------------------------------------

def _rng(seed=0):
    return numpy.random.default_rng(seed)


def weighted_loss(ys_shape, seed=1):
    """sum(w * ys) + 0.5 sum(ys^2): smooth, and every output time and entry contributes."""
    weights = _rng(seed).normal(size=ys_shape)
    return lambda ys: ops.sum(weights * ys) + 0.5 * ops.sum(ys * ys)


def mlp(y, t, params):
    """A tanh MLP vector field, params {"W1", "b1", "W2", "b2"}."""
    hidden = ops.tanh(ops.matmul(y, params["W1"]) + params["b1"])
    return ops.matmul(hidden, params["W2"]) + params["b2"]


def mlp_params(dim=2, hidden=6, seed=0, scale=0.5):
    rng = _rng(seed)
    return {"W1": rng.normal(0, scale, (dim, hidden)), "b1": rng.normal(0, 0.1, hidden),
            "W2": rng.normal(0, scale, (hidden, dim)), "b2": rng.normal(0, 0.1, dim)}


def linear_problem():
    t = numpy.array([0.0, 0.4, 1.1])
    y0 = numpy.array([1.0, -0.5])
    params = {"A": numpy.array([[-0.1, 1.3], [-1.1, -0.3]])}
    return (lambda y, t, p: ops.matmul(y, p["A"])), y0, t, params, weighted_loss((3, 2))


def mlp_problem():
    t = numpy.array([0.0, 0.6, 1.2])
    return mlp, numpy.array([0.7, -0.3]), t, mlp_params(), weighted_loss((3, 2))


def time_dependent_problem():
    """f(z, t) = tanh(z W + t c) - k t z: t enters both inside the tanh and as a factor."""
    def func(y, t, p):
        return ops.tanh(ops.matmul(y, p["W"]) + t * p["c"]) - p["k"] * t * y
    rng = _rng(2)
    params = {"W": rng.normal(0, 0.8, (2, 2)), "c": numpy.array([0.9, -0.6]),
              "k": numpy.array(0.3)}
    t = numpy.array([0.2, 0.9, 1.5])
    return func, numpy.array([0.4, 0.8]), t, params, weighted_loss((3, 2))


def batch_problem():
    y0 = _rng(3).normal(size=(3, 2))  # (B, D): the parameters are shared across the batch
    t = numpy.array([0.0, 0.5, 1.0])
    return mlp, y0, t, mlp_params(seed=4), weighted_loss((3, 3, 2))


def many_times_problem():
    t = numpy.linspace(0.0, 2.0, 7)  # 7 observation times, the loss looks at all of them
    return mlp, numpy.array([1.0, 0.2]), t, mlp_params(seed=5), weighted_loss((7, 2))


def decreasing_times_problem():
    t = numpy.array([1.5, 1.1, 0.4, -0.2])
    return mlp, numpy.array([-0.3, 0.9]), t, mlp_params(seed=6), weighted_loss((4, 2))


PROBLEMS = {"linear": linear_problem, "tanh_mlp": mlp_problem,
            "time_dependent": time_dependent_problem, "batch": batch_problem,
            "many_times": many_times_problem, "decreasing_times": decreasing_times_problem}


def assert_three_way(comparison, bound=1e-5):
    for pair, errors in comparison.errors.items():
        for wrt, error in errors.items():
            assert error <= bound, (f"{pair[0]} vs {pair[1]} w.r.t. {wrt}: relative error "
                                    f"{error:.3g} > {bound:g}\n{comparison.format_table()}")


# ---------------------------------------------------------------------------------------------
# Three-way agreement
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PROBLEMS))
def test_adjoint_backprop_and_finite_differences_agree(name):
    func, y0, t, params, loss = PROBLEMS[name]()
    comparison = compare_gradients(loss, func, y0, t, params, method="dopri5", **TIGHT)
    assert set(comparison.gradients["adjoint"]) == {"y0", "t", "params"}
    assert comparison.gradients["adjoint"]["t"].shape == t.shape
    assert_three_way(comparison)


def test_time_gradients_are_nonzero_so_the_comparison_means_something():
    # A relative error bound is only informative where the gradient is not ~0.
    for name, problem in PROBLEMS.items():
        func, y0, t, params, loss = problem()
        time_grad = grad(lambda t: loss(minode.odeint(func, y0, t, params, **TIGHT)))(t)
        assert numpy.all(numpy.abs(time_grad) > 1e-3), (name, time_grad)


def test_decreasing_time_grid_gives_mirrored_gradients():
    # Solving dy/dt = f(y, t) on t = [1, 0] equals solving dy/ds = -f(y, -s) on s = [-1, 0].
    func, y0, _, params, _ = mlp_problem()
    backward_t, mirrored_t = numpy.array([1.0, 0.3, 0.0]), numpy.array([-1.0, -0.3, 0.0])
    loss = weighted_loss((3, 2))

    def mirrored(y, s, p):
        return -func(y, -s, p)

    grads_backward = grad(lambda y0, t, p: loss(minode.odeint(func, y0, t, p, **TIGHT)),
                          (0, 1, 2))(y0, backward_t, params)
    grads_mirrored = grad(lambda y0, t, p: loss(minode.odeint(mirrored, y0, t, p, **TIGHT)),
                          (0, 1, 2))(y0, mirrored_t, params)
    assert relative_error(grads_backward[0], grads_mirrored[0]) < 1e-7
    assert relative_error(grads_backward[1], -grads_mirrored[1]) < 1e-7  # t = -s
    assert relative_error(grads_backward[2], grads_mirrored[2]) < 1e-7


# ---------------------------------------------------------------------------------------------
# Parameter pytrees
# ---------------------------------------------------------------------------------------------

def _mlp_from_tuple(y, t, p):
    (w1, b1), (w2, b2) = p
    return ops.matmul(ops.tanh(ops.matmul(y, w1) + b1), w2) + b2


def _mlp_from_nested_list(y, t, p):
    [[w1, b1], [[w2], b2]] = p
    return ops.matmul(ops.tanh(ops.matmul(y, w1) + b1), w2) + b2


def _as_tuple(p):
    return ((p["W1"], p["b1"]), (p["W2"], p["b2"]))


def _as_nested_list(p):
    return [[p["W1"], p["b1"]], [[p["W2"]], p["b2"]]]


@pytest.mark.parametrize("kind", ["dict", "tuple", "nested_list"])
def test_params_pytree_gradients_keep_the_structure_and_agree(kind):
    dict_params = mlp_params(seed=7)
    func, params = {"dict": (mlp, dict_params),
                    "tuple": (_mlp_from_tuple, _as_tuple(dict_params)),
                    "nested_list": (_mlp_from_nested_list, _as_nested_list(dict_params))}[kind]
    y0, t, loss = numpy.array([0.5, -0.8]), numpy.array([0.0, 0.5, 1.0]), weighted_loss((3, 2))
    comparison = compare_gradients(loss, func, y0, t, params, **TIGHT)
    assert_three_way(comparison)
    for mode, grads in comparison.gradients.items():
        assert _structure(grads["params"]) == _structure(params), mode
    # The same numbers whatever the container.
    reference = compare_gradients(loss, mlp, y0, t, dict_params, **TIGHT)
    convert = {"dict": lambda p: p, "tuple": _as_tuple, "nested_list": _as_nested_list}[kind]
    assert relative_error(comparison.gradients["adjoint"]["params"],
                          convert(reference.gradients["adjoint"]["params"])) < 1e-12


def _structure(tree):
    if isinstance(tree, dict):
        return {key: _structure(value) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_structure(child) for child in tree)
    return tree.shape


# ---------------------------------------------------------------------------------------------
# Every solver, both gradient modes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["bosh3", "dopri5", "tsit5"])
def test_adaptive_solver_gradients_agree_three_ways(method):
    # Two output times: the output is a step end, not a dense-output interpolant (bosh3's
    # cubic Hermite interpolant is 3rd order, and its error would dominate dL/dt_i).
    # bosh3 (order 3) needs many steps at 1e-10; 1e-9 keeps it quick and accurate enough.
    func, y0, _, params, _ = linear_problem()
    t = numpy.array([0.1, 1.3])
    tolerances = dict(rtol=1e-9, atol=1e-9) if method == "bosh3" else TIGHT
    comparison = compare_gradients(weighted_loss((2, 2)), func, y0, t, params, method=method,
                                   **tolerances)
    assert_three_way(comparison)


FIXED = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


@pytest.mark.parametrize("method", list(FIXED))
def test_fixed_step_backprop_is_the_exact_derivative_of_the_discrete_solution(method):
    # Backprop differentiates exactly the arithmetic of the steps, so it must match central
    # differences of the same discretisation to FD accuracy, however coarse the step.
    # The intervals 0.37 and 0.54 are not multiples of 0.05, so perturbing t by 1e-6 does not
    # change the number of steps (which would make the discrete solution jump).
    func, y0, _, params, _ = mlp_problem()
    t = numpy.array([0.0, 0.37, 0.91])
    loss = weighted_loss((3, 2))

    def of_inputs(y0, t, params):
        return loss(minode.odeint(func, y0, t, params, method=method, step_size=0.05,
                                  grad="backprop"))
    check_grads(of_inputs, y0, t, params, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", list(FIXED))
def test_fixed_step_adjoint_converges_to_the_exact_gradient_at_the_solver_order(method):
    # The adjoint of a fixed-step solve is the exact gradient of the ODE up to the global error
    # O(h^p) of the forward and backward solves, not the derivative of the discrete forward
    # solution. So compare it with the exact gradient (dopri5 at 1e-12) at two steps h and h/2,
    # in the max norm (relative to the largest gradient entry; a tiny entry's own relative error
    # says nothing about the order). Measured constants on this smooth problem (window 1.2,
    # derivatives of order 1): error / h^p = 0.35 (euler), 0.08 (midpoint, heun), 0.02 (rk4);
    # the bound h^p leaves a factor 3 or more. Halving h must divide the error by about 2^p.
    func, y0, t, params, _ = mlp_problem()
    loss = weighted_loss((3, 2))

    def gradient(**options):
        return grad(lambda y0, t, p: loss(minode.odeint(func, y0, t, p, **options)),
                    (0, 1, 2))(y0, t, params)

    exact = gradient(rtol=1e-12, atol=1e-12)
    order = FIXED[method]
    h = {1: 0.01, 2: 0.02, 4: 0.1}[order]
    errors = [relative_error(gradient(method=method, step_size=step), exact, floor=1.0)
              for step in (h, h / 2)]
    assert errors[0] <= h ** order, errors
    rate = errors[0] / errors[1]
    assert 0.7 * 2 ** order <= rate <= 1.4 * 2 ** order, (errors, rate)


@pytest.mark.parametrize("method", list(FIXED))
def test_fixed_step_adjoint_and_backprop_agree_to_the_discretisation_error(method):
    # Both are within O(h^p) of the exact gradient (constants <= 0.35, measured above), so with
    # a small step they agree to h^p in the max norm (h = 1e-3 for euler: error <= 1e-3;
    # 1e-2 for 2nd order: <= 1e-4; 2e-2 for rk4: <= 1.6e-7). (Backprop against finite
    # differences is the test above: here the intervals 0.6 are whole multiples of h, so a
    # perturbed t would change the number of steps.)
    func, y0, t, params, loss = mlp_problem()
    step = {1: 1e-3, 2: 1e-2, 4: 2e-2}[FIXED[method]]
    adjoint, _ = _adjoint_gradient_and_stats(func, y0, t, params, loss, method=method,
                                             step_size=step)
    backprop, _ = _adjoint_gradient_and_stats(func, y0, t, params, loss, method=method,
                                              step_size=step, grad="backprop")
    assert relative_error(adjoint, backprop, floor=1.0) <= step ** FIXED[method]


# ---------------------------------------------------------------------------------------------
# odeint inside a larger autograd graph
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grad_mode", ["adjoint", "backprop"])
def test_odeint_between_an_encoder_and_a_loss_gets_correct_gradients(grad_mode):
    rng = _rng(8)
    inputs, targets = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    def model_loss(encoder, ode_params, end_time):
        y0 = ops.tanh(ops.matmul(inputs, encoder["E"]) + encoder["e"])      # encoder
        t = ops.concatenate([numpy.zeros(1), end_time])
        ys = minode.odeint(mlp, y0, t, ode_params, grad=grad_mode, **TIGHT)  # ODE block
        prediction = ops.matmul(ys[-1], encoder["D"])                        # decoder
        return ops.mean((prediction - targets) ** 2)                         # loss

    encoder = {"E": rng.normal(0, 0.5, (3, 2)), "e": rng.normal(0, 0.1, 2),
               "D": rng.normal(0, 0.5, (2, 2))}
    check_grads(model_loss, encoder, mlp_params(seed=9), numpy.array([0.8]), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Options of the backward solve
# ---------------------------------------------------------------------------------------------

def _adjoint_gradient_and_stats(func, y0, t, params, loss, **options):
    stats = minode.SolverStats()
    grads = grad(lambda y0, t, p: loss(minode.odeint(func, y0, t, p, stats=stats, **options)),
                 (0, 1, 2))(y0, t, params)
    return grads, stats


def test_seminorm_gives_the_same_gradients_with_no_more_backward_evaluations():
    for name in ("tanh_mlp", "batch", "many_times"):
        func, y0, t, params, loss = PROBLEMS[name]()
        plain, plain_stats = _adjoint_gradient_and_stats(func, y0, t, params, loss, **TIGHT)
        semi, semi_stats = _adjoint_gradient_and_stats(func, y0, t, params, loss, seminorm=True,
                                                       **TIGHT)
        assert relative_error(semi, plain) < 1e-6, name
        assert semi_stats.forward.nfe == plain_stats.forward.nfe
        assert semi_stats.backward.nfe <= plain_stats.backward.nfe, (name, semi_stats,
                                                                      plain_stats)


def test_seminorm_saves_backward_evaluations_with_many_parameters_and_a_long_window():
    # 3 * 128 + 128 + 2 = 642 parameters against a state of 4 x 2: without the seminorm the
    # parameter adjoint a_theta dominates the backward error norm.
    rng = _rng(10)
    hidden = 128
    params = {"W1": rng.normal(0, 2 ** -0.5, (2, hidden)), "b1": rng.normal(0, 0.1, hidden),
              "W2": rng.normal(0, hidden ** -0.5, (hidden, 2)), "b2": numpy.zeros(2)}
    y0, t = rng.normal(size=(4, 2)), numpy.array([0.0, 5.0])
    loss = weighted_loss((2, 4, 2))
    options = dict(rtol=1e-6, atol=1e-8)
    exact, _ = _adjoint_gradient_and_stats(mlp, y0, t, params, loss, rtol=1e-12, atol=1e-12)
    plain, plain_stats = _adjoint_gradient_and_stats(mlp, y0, t, params, loss, **options)
    semi, semi_stats = _adjoint_gradient_and_stats(mlp, y0, t, params, loss, seminorm=True,
                                                   **options)
    # Measured: 117 backward evaluations against 141 (benchmarks/seminorm.py has more).
    assert semi_stats.backward.nfe < 0.9 * plain_stats.backward.nfe, (semi_stats, plain_stats)
    # As accurate (measured 3.3e-5 against 4.8e-5 relative to rtol = 1e-12 gradients).
    assert relative_error(semi, exact, floor=1e-3) < 2 * relative_error(plain, exact, floor=1e-3)


def test_adjoint_rtol_and_atol_control_only_the_backward_solve():
    # One long interval (3 time units), so the backward steps are set by the tolerance, not by
    # the spacing of the observation times.
    func, y0, t, params, _ = linear_problem()
    t, loss = numpy.array([0.0, 3.0]), weighted_loss((2, 2))
    exact, _ = _adjoint_gradient_and_stats(func, y0, t, params, loss, rtol=1e-12, atol=1e-12)
    loose, loose_stats = _adjoint_gradient_and_stats(func, y0, t, params, loss,
                                                     adjoint_rtol=1e-4, adjoint_atol=1e-4,
                                                     **TIGHT)
    tight, tight_stats = _adjoint_gradient_and_stats(func, y0, t, params, loss, **TIGHT)
    assert loose_stats.forward.nfe == tight_stats.forward.nfe
    assert loose_stats.backward.nfe < 0.2 * tight_stats.backward.nfe
    assert relative_error(tight, exact) < 1e-7 < relative_error(loose, exact) < 1e-1


def test_adjoint_method_and_step_size_choose_the_backward_solver():
    # rk4 with step 0.01 on the window [0, 1.2] (intervals 0.6, 0.6): 2 x 60 steps of 4
    # evaluations, plus one evaluation of f per output time t_i (i > 0) for dL/dt_i.
    func, y0, t, params, loss = mlp_problem()
    exact, _ = _adjoint_gradient_and_stats(func, y0, t, params, loss, **TIGHT)
    grads, stats = _adjoint_gradient_and_stats(func, y0, t, params, loss, adjoint_method="rk4",
                                               adjoint_step_size=0.01, **TIGHT)
    assert stats.backward.nfe == 120 * 4 + 2
    assert stats.backward.steps == 120
    assert relative_error(grads, exact) < 1e-7  # rk4 at h = 0.01: O(h^4)


def test_fixed_step_forward_with_an_adaptive_backward_solve():
    # adjoint_step_size defaults to the forward step only for a fixed-step backward method;
    # an adaptive adjoint_method picks its own steps.
    func, y0, t, params, loss = mlp_problem()
    exact, _ = _adjoint_gradient_and_stats(func, y0, t, params, loss, **TIGHT)
    grads, stats = _adjoint_gradient_and_stats(func, y0, t, params, loss, method="rk4",
                                               step_size=0.01, adjoint_method="dopri5",
                                               adjoint_rtol=1e-10, adjoint_atol=1e-10)
    assert stats.forward.steps == 120 and stats.backward.steps < 120
    assert relative_error(grads, exact) < 1e-6


def test_backward_pass_carries_its_step_size_across_observation_times():
    # 20 intervals of 0.05 on a slow problem: one dopri5 step covers an interval. Restarting the
    # step-size selection at every t_i (as torchdiffeq, JAX and diffrax do) costs each interval
    # what a solve over the first interval alone costs (initial step selection and growth:
    # `single`). Carrying the last step over, every later interval needs one step: a fresh k1
    # (the jump in a changes the augmented state) plus 6 dopri5 stages.
    func, y0, _, params, _ = batch_problem()
    t = numpy.linspace(0.0, 1.0, 21)
    _, single = _adjoint_gradient_and_stats(func, y0, t[:2], params, weighted_loss((2, 3, 2)))
    _, twenty = _adjoint_gradient_and_stats(func, y0, t, params, weighted_loss((21, 3, 2)))
    time_grads = 1  # one evaluation of f per t_i, i > 0, for dL/dt_i
    per_interval = single.backward.nfe - time_grads
    assert twenty.backward.nfe <= single.backward.nfe + 19 * (7 + time_grads) + 12, (
        single, twenty)
    assert twenty.backward.nfe < 0.5 * 20 * per_interval, (single, twenty)


def test_restarting_the_backward_step_size_would_cost_more(monkeypatch):
    # The same check from the other side: force every interval to pick its step from scratch.
    func, y0, _, params, _ = batch_problem()
    t, loss = numpy.linspace(0.0, 1.0, 21), weighted_loss((21, 3, 2))
    grads, carried = _adjoint_gradient_and_stats(func, y0, t, params, loss)

    class ForgetfulCarry(adjoint_module.StepSizeCarry):
        step = property(lambda self: None, lambda self, value: None)
    monkeypatch.setattr(adjoint_module, "StepSizeCarry", ForgetfulCarry)
    restarted_grads, restarted = _adjoint_gradient_and_stats(func, y0, t, params, loss)
    assert carried.backward.nfe < 0.7 * restarted.backward.nfe, (carried, restarted)
    assert relative_error(grads, restarted_grads) < 1e-5  # both at rtol 1e-7


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------

def test_stats_count_the_backward_solve_separately():
    func, y0, t, params, loss = many_times_problem()
    forward_only = minode.SolverStats()
    minode.odeint(func, y0, t, params, stats=forward_only)
    assert forward_only.forward.nfe > 0 and forward_only.backward.nfe == 0

    _, with_adjoint = _adjoint_gradient_and_stats(func, y0, t, params, loss)
    assert with_adjoint.forward.nfe == forward_only.forward.nfe
    assert with_adjoint.forward.steps == forward_only.forward.steps
    assert with_adjoint.backward.nfe > 0 and with_adjoint.backward.steps > 0

    _, with_backprop = _adjoint_gradient_and_stats(func, y0, t, params, loss, grad="backprop")
    assert with_backprop.forward.nfe == forward_only.forward.nfe
    assert with_backprop.backward.nfe == 0  # autograd's own backward pass evaluates no func


def test_comparison_table_lists_every_argument_and_every_entry():
    func, y0, t, params, loss = linear_problem()
    comparison = compare_gradients(loss, func, y0, t, params, **TIGHT)
    table = comparison.format_table()
    assert table.splitlines()[0].startswith("| gradient w.r.t. |")
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["y0", "t",
                                                                               "params"]
    entries = comparison.format_table(entries=True).splitlines()
    assert len(entries) == 2 + 2 + 3 + 4
    assert entries[-1].startswith("| params['A'][1, 1] |")
    assert comparison.stats.backward.nfe > 0
