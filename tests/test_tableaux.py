"""Butcher tableaux check themselves: consistency, order conditions from rooted trees, derived
FSAL, and the continuous extensions (dense output) as per-stage polynomials."""
import dataclasses
from fractions import Fraction as F

import numpy
import pytest

from minode.stepping import interpolate, rk_step
from minode.tableaux import (BOSH3, DOPRI5, EULER, HEUN, MIDPOINT, RK4, TABLEAUX, TSIT5,
                             ButcherTableau, DenseOutput, _density, _elementary_weights,
                             rooted_trees)

ADAPTIVE = [BOSH3, DOPRI5, TSIT5]


def test_rooted_tree_counts_match_the_known_sequence():
    # OEIS A000081: 1, 1, 2, 4, 9, 20 rooted trees with 1..6 vertices, so there are 8 order
    # conditions up to order 4 and 17 up to order 5.
    counts = [len(rooted_trees(size)) for size in range(1, 7)]
    assert counts == [1, 1, 2, 4, 9, 20]
    assert sum(counts[:4]) == 8 and sum(counts[:5]) == 17


def test_order_four_conditions_are_the_textbook_ones_for_rk4():
    # Hairer, Norsett & Wanner I, Table II.2.2: for each tree of order 4, sum_i b_i Phi_i and
    # 1/gamma, written out by hand for the classic RK4 (c = 0, 1/2, 1/2, 1).
    b, c, a = RK4.b, RK4.c, RK4.a
    by_hand = {
        ((), (), ()): (sum(b_i * c_i ** 3 for b_i, c_i in zip(b, c)), 4),
        ((), ((),)): (sum(b[i] * c[i] * a[i][j] * c[j] for i in range(4) for j in range(i)), 8),
        (((), ()),): (sum(b[i] * a[i][j] * c[j] ** 2 for i in range(4) for j in range(i)), 12),
        ((((),),),): (sum(b[i] * a[i][j] * a[j][k] * c[k] for i in range(4) for j in range(i)
                          for k in range(j)), 24),
    }
    assert set(by_hand) == set(rooted_trees(4))
    for tree, (value, density) in by_hand.items():
        assert _density(tree) == density
        assert sum(w * phi for w, phi in zip(b, _elementary_weights(tree, a))) == value
        assert value == F(1, density)


@pytest.mark.parametrize("tableau", TABLEAUX.values(), ids=list(TABLEAUX))
def test_coefficients_are_kept_exact_next_to_the_engines_floats(tableau):
    assert all(isinstance(x, F) for x in tableau.b + tableau.c + sum(tableau.a, ()))
    assert tableau.floats.b == tuple(float(x) for x in tableau.b)
    assert tableau.floats.a[-1] == tuple(float(x) for x in tableau.a[-1])


# Each kind of condition, broken by one wrong coefficient (or a claim the data cannot back).
WRONG = [
    ("row sums", RK4, {"c": [0, F(1, 3), F(1, 2), 1]}, r"row sum of a equals c in row 1"),
    ("sum of b", HEUN, {"b": [F(1, 2), F(1, 3)]}, r"sum of b equals 1"),
    ("sum of b_error", BOSH3, {"b_hat": [F(7, 24), F(1, 4), F(1, 3), F(1, 9)]},
     r"sum of b_error equals 0"),
    ("order 2 of b", MIDPOINT, {"b": [F(1, 3), F(2, 3)]}, r"b_i .* tree \[t\] \(order 2\)"),
    ("order 3 of b", RK4, {"b": [F(1, 6), F(1, 2), F(1, 6), F(1, 6)]},
     r"b_i .* tree \[\[t\]\] \(order 3\)"),
    # y + z = 1 in the last row keeps every condition up to order 3 and breaks [[[t]]] only.
    ("order 4 of b", RK4, {"a": [[], [F(1, 2)], [0, F(1, 2)], [0, F(1, 2), F(1, 2)]]},
     r"b_i .* tree \[\[\[t\]\]\] \(order 4\)"),
    ("order 5 of b", DOPRI5, {"order": 6}, r"b_i .* \(order 6\)"),
    ("order of b_hat", DOPRI5,
     {"b_hat": [F(5179, 57600), 0, F(7571, 16695) + F(1, 1000), F(393, 640) - F(1, 1000),
                F(-92097, 339200), F(187, 2100), F(1, 40)]},
     r"b_hat_i .* tree \[t\] \(order 2\)"),
    ("error order claimed too high", BOSH3, {"error_order": 3}, r"b_hat_i .* \(order 3\)"),
    ("a wrong 10th digit in tsit5", TSIT5, {"c": [0, 0.161, 0.327, 0.9, 0.9800255419045097, 1, 1]},
     r"row sum of a equals c in row 4"),
]


@pytest.mark.parametrize("kind, tableau, change, message", WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_coefficient_is_caught_and_the_error_names_tableau_and_condition(
        kind, tableau, change, message):
    with pytest.raises(ValueError, match=rf"^tableau {tableau.name!r}: .*{message}"):
        dataclasses.replace(tableau, **change)


@pytest.mark.parametrize("tableau", TABLEAUX.values(), ids=list(TABLEAUX))
def test_each_tableau_has_exactly_its_stated_order(tableau):
    with pytest.raises(ValueError, match=rf"b_i .* \(order {tableau.order + 1}\)"):
        dataclasses.replace(tableau, order=tableau.order + 1)


def test_tsit5_decimals_satisfy_the_conditions_only_up_to_their_rounding():
    with pytest.raises(ValueError, match=r"^tableau 'tsit5': row sum .* tolerance 0\)"):
        dataclasses.replace(TSIT5, tolerance=0)


def test_coefficients_must_be_numbers():
    with pytest.raises(TypeError, match=r"^tableau 'heun': coefficients must be"):
        dataclasses.replace(HEUN, b=["1/2", "1/2"])


# ---------------------------------------------------------------------------------------------
# FSAL is derived from the coefficients
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tableau, fsal", [(EULER, False), (MIDPOINT, False), (HEUN, False),
                                           (RK4, False), (BOSH3, True), (DOPRI5, True),
                                           (TSIT5, True)], ids=lambda x: getattr(x, "name", x))
def test_fsal_is_derived_from_the_last_row_of_a(tableau, fsal):
    assert tableau.fsal is fsal


def test_a_stage_appended_at_the_solution_makes_a_method_fsal():
    # RK4 plus a 5th stage with a = b, c = 1 and weight 0: f at the new solution, for free.
    fsal_rk4 = ButcherTableau("rk4-fsal", c=RK4.c + (1,), a=RK4.a + (RK4.b,),
                              b=RK4.b + (0,), order=4)
    assert fsal_rk4.fsal and not RK4.fsal
    rhs = lambda y, t: -2.0 * t * y * y  # noqa: E731
    y0, t0, h = numpy.array([0.3]), 1.5, 0.1
    y_rk4, _, _ = rk_step(rhs, RK4, y0, t0, h, rhs(y0, t0))
    y_fsal, _, stages = rk_step(rhs, fsal_rk4, y0, t0, h, rhs(y0, t0))
    numpy.testing.assert_allclose(y_fsal, y_rk4, rtol=1e-15)
    numpy.testing.assert_allclose(stages[-1], rhs(y_fsal, t0 + h), rtol=1e-15)


def test_an_embedded_pair_that_is_not_fsal_is_rejected():
    with pytest.raises(ValueError, match=r"^tableau 'heun-euler': an embedded pair must be FSAL"):
        ButcherTableau("heun-euler", c=[0, 1], a=[[], [1]], b=[F(1, 2), F(1, 2)], order=2,
                       b_hat=[1, 0], error_order=1)


# ---------------------------------------------------------------------------------------------
# Dense output: per-stage polynomials b_i(theta)
# ---------------------------------------------------------------------------------------------

def _derivative_at(dense, theta):
    return [sum((power + 1) * w * theta ** power for power, w in enumerate(row))
            for row in dense.weights]


@pytest.mark.parametrize("tableau", ADAPTIVE, ids=lambda t: t.name)
def test_dense_weights_are_zero_at_theta_0_and_b_at_theta_1(tableau):
    dense = tableau.dense
    assert dense.at(F(0)) == (0,) * len(tableau.b)
    differences = [abs(x - y) for x, y in zip(dense.at(F(1)), tableau.b)]
    assert max(differences) <= tableau.tolerance  # exactly 0 for bosh3 and dopri5


@pytest.mark.parametrize("tableau", ADAPTIVE, ids=lambda t: t.name)
def test_dense_output_has_slope_f0_at_theta_0_and_f1_at_theta_1(tableau):
    # d/dtheta of sum_i b_i(theta) k_i is k_1 = f(y0) at theta = 0 and k_s = f(y1) at 1 (FSAL):
    # the interpolants join with continuous derivatives.
    stages = len(tableau.b)
    first, last = [1] + [0] * (stages - 1), [0] * (stages - 1) + [1]
    for theta, expected in ((F(0), first), (F(1), last)):
        slope = _derivative_at(tableau.dense, theta)
        assert max(abs(x - y) for x, y in zip(slope, expected)) <= 1e-13, (theta, slope)


def test_a_wrong_dense_coefficient_is_caught():
    # dopri5's bubble term d_i theta^2 (1 - theta)^2 vanishes at theta = 1, so a wrong d_i
    # passes the theta = 1 check; the order conditions of the dense output catch it.
    weights = list(DOPRI5.dense.weights)
    w1, w2, w3, w4 = weights[2]
    weights[2] = (w1, w2 + F(1, 100), w3 - F(2, 100), w4 + F(1, 100))
    with pytest.raises(ValueError, match=r"^tableau 'dopri5': dense output 'dopri5' order "
                                         r"condition .* tree t \(order 1\), coefficient of "
                                         r"theta\^2"):
        dataclasses.replace(DOPRI5, dense=dataclasses.replace(DOPRI5.dense, weights=weights))


def test_a_dense_output_that_misses_the_step_end_is_caught():
    weights = list(TSIT5.dense.weights)
    weights[1] = weights[1][:3] + (weights[1][3] + 1e-9,)
    with pytest.raises(ValueError, match=r"^tableau 'tsit5': dense output 'tsit5' at theta = 1 "
                                         r"equals b \(stage 1\)"):
        dataclasses.replace(TSIT5, dense=dataclasses.replace(TSIT5.dense, weights=weights))


@pytest.mark.parametrize("tableau", ADAPTIVE, ids=lambda t: t.name)
def test_dense_output_has_exactly_its_stated_order(tableau):
    too_high = DenseOutput(tableau.dense.name, tableau.dense.weights, tableau.dense.order + 1)
    with pytest.raises(ValueError, match=rf"dense output .* \(order {tableau.dense.order + 1}\)"):
        dataclasses.replace(tableau, dense=too_high)


def test_interpolating_without_dense_output_is_an_error():
    with pytest.raises(ValueError, match=r"^tableau 'rk4' has no dense output"):
        interpolate(RK4, numpy.zeros(1), 0.1, [numpy.zeros(1)] * 4, 0.5)
