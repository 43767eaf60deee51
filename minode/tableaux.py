"""Butcher tableaux: every explicit Runge-Kutta method in minode is data, run by one engine.

A tableau (c, a, b) defines the stages k_i = f(y + h sum_j a_ij k_j, t + c_i h) and the step
y_next = y + h sum_i b_i k_i. An embedded pair adds a lower-order solution ``b_hat``; then
h sum_i b_error_i k_i with b_error = b - b_hat estimates the local error (Hairer, Norsett &
Wanner, "Solving ODEs I", sec. II.4). A continuous extension (dense output, sec. II.6) gives
the solution inside a step as y0 + h sum_i b_i(theta) k_i with polynomials b_i(theta).

A tableau checks itself when it is built, exactly on its rational coefficients: the consistency
conditions, and Butcher's order conditions (sec. II.2) for b up to ``order``, for b_hat up to
``error_order`` and for the dense output up to its order. One condition per rooted tree tau
with |tau| vertices:

    sum_i b_i Phi_i(tau) = 1 / gamma(tau),                     (the step, sec. II.2)
    sum_i b_i(theta) Phi_i(tau) = theta^|tau| / gamma(tau),     (dense output, sec. II.6)

where Phi_i(tau) is the elementary weight of stage i and gamma(tau) the density of the tree.
"""
import functools
import numbers
from dataclasses import dataclass, field
from fractions import Fraction as F

from minode.checks import check_nonnegative, check_positive_int


# ---------------------------------------------------------------------------------------------
# Rooted trees (Hairer, Norsett & Wanner I, sec. II.2). A tree is the sorted tuple of the subtrees
# hanging from its root, so () is the single vertex and equal trees are equal tuples.
# ---------------------------------------------------------------------------------------------

@functools.cache
def rooted_trees(size):
    """All rooted trees with ``size`` vertices (1, 1, 2, 4, 9, 20, ... of them)."""
    if size == 1:
        return ((),)
    return tuple(sorted({grown for tree in rooted_trees(size - 1) for grown in _add_leaf(tree)}))


def _add_leaf(tree):
    """Every tree made from ``tree`` by attaching one new vertex somewhere."""
    yield tuple(sorted(tree + ((),)))
    for i, subtree in enumerate(tree):
        for grown in _add_leaf(subtree):
            yield tuple(sorted(tree[:i] + (grown,) + tree[i + 1:]))


def _size(tree):
    return 1 + sum(_size(subtree) for subtree in tree)


def _density(tree):
    """gamma(tau) = |tau| * prod gamma(subtree): the exact solution's Taylor weight is 1/gamma."""
    result = _size(tree)
    for subtree in tree:
        result *= _density(subtree)
    return result


def _elementary_weights(tree, a):
    """Phi_i(tau) for every stage i: 1 for the single vertex, prod_subtrees sum_j a_ij Phi_j."""
    result = [F(1)] * len(a)
    for subtree in tree:
        inner = _elementary_weights(subtree, a)
        result = [r * sum(a_ij * phi_j for a_ij, phi_j in zip(row, inner))
                  for r, row in zip(result, a)]
    return result


def _tree_name(tree):
    """Butcher's bracket notation: t is the single vertex, [t, [t]] a root with two subtrees."""
    return "[" + ", ".join(_tree_name(subtree) for subtree in tree) + "]" if tree else "t"


def _trees_up_to(order, smallest=1):
    return [tree for size in range(smallest, order + 1) for tree in rooted_trees(size)]


# ---------------------------------------------------------------------------------------------
# Tableaux
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DenseOutput:
    """A continuous extension: y(t0 + theta h) ~ y0 + h sum_i b_i(theta) k_i, 0 <= theta <= 1.

    ``weights[i]`` lists the coefficients of theta, theta^2, ... of stage i's polynomial
    b_i(theta) (no constant term, so theta = 0 gives y0). ``order`` is the order of the
    interpolant: its local error is O(h^(order + 1)).
    """

    name: str
    weights: tuple
    order: int
    reference: str = ""

    def __post_init__(self):
        owner = f"dense output {self.name!r}"
        _set(self, weights=tuple(_exact_row(owner, row) for row in self.weights))
        check_positive_int(f"{owner}: order", self.order)
        if len({len(row) for row in self.weights}) > 1:
            raise ValueError(f"{owner}: every stage needs a polynomial of the same degree")

    def at(self, theta):
        """The stage weights b_i(theta) (exactly, for a rational ``theta``)."""
        return tuple(sum(w * theta ** (power + 1) for power, w in enumerate(row))
                     for row in self.weights)


@dataclass(frozen=True)
class FloatCoefficients:
    """A tableau's coefficients as floats: what the engine (`minode.stepping`) multiplies by."""

    c: tuple
    a: tuple
    b: tuple
    b_error: tuple | None
    dense: tuple | None


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method, given by its exact coefficients.

    ``c``, ``a`` (strictly lower triangular rows), ``b`` and ``b_hat`` are rationals (ints,
    Fractions), or floats checked to ``tolerance``. ``order`` is the order of ``b``;
    ``error_order`` that of the embedded ``b_hat`` (the error estimate is O(h^(error_order + 1)),
    which sets the step-size controller's exponent). ``dense`` is the continuous extension.
    Derived: ``fsal`` ("first same as last": the last stage is f at the new solution, so the next
    step reuses it as k1), ``b_error = b - b_hat`` and ``floats``, the coefficients as floats.
    """

    name: str
    c: tuple
    a: tuple
    b: tuple
    order: int
    b_hat: tuple | None = None
    error_order: int | None = None
    dense: DenseOutput | None = None
    tolerance: float = 0
    reference: str = ""
    fsal: bool = field(init=False)
    b_error: tuple | None = field(init=False)
    floats: FloatCoefficients = field(init=False)

    def __post_init__(self):
        owner = f"tableau {self.name!r}"
        _set(self, c=_exact_row(owner, self.c), b=_exact_row(owner, self.b),
             a=tuple(_exact_row(owner, row) for row in self.a),
             b_hat=None if self.b_hat is None else _exact_row(owner, self.b_hat))
        check_positive_int(f"{owner}: order", self.order)
        check_nonnegative(f"{owner}: tolerance", self.tolerance)
        _set(self, tolerance=F(self.tolerance))
        _check_shapes(self)
        _set(self, b_error=None if self.b_hat is None else
             tuple(x - y for x, y in zip(self.b, self.b_hat)),
             fsal=self.c[-1] == 1 and self.b[-1] == 0 and self.a[-1] == self.b[:-1])
        if self.adaptive and not (self.fsal and self.dense is not None):
            # The adaptive loop reuses the last stage as the next k1 and needs dense output.
            raise ValueError(f"{owner}: an embedded pair must be FSAL (last row of a equal to "
                             "b, last c equal to 1) and carry dense output here")
        _check_consistency(self)
        _check_order_conditions(self, "b", self.b, self.order)
        if self.adaptive:
            _check_order_conditions(self, "b_hat", self.b_hat, self.error_order)
        if self.dense is not None:
            _check_dense_output(self)
        _set(self, floats=FloatCoefficients(
            _floats(self.c), tuple(_floats(row) for row in self.a), _floats(self.b),
            None if self.b_error is None else _floats(self.b_error),
            None if self.dense is None else tuple(_floats(row) for row in self.dense.weights)))

    @property
    def adaptive(self):
        """True for an embedded pair, which can control its step size."""
        return self.b_hat is not None


def _set(instance, **values):
    """Set fields of a frozen dataclass from its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(instance, name, value)


def _exact_row(owner, row):
    if not all(isinstance(x, (numbers.Rational, float)) for x in row):
        raise TypeError(f"{owner}: coefficients must be ints, Fractions or floats, got {row!r}")
    return tuple(F(x) for x in row)


def _floats(row):
    return tuple(float(x) for x in row)


def _show(value):
    return str(value) if value.denominator < 10 ** 6 else f"{float(value):.17g}"


def _check_equal(tableau, value, expected, condition):
    if abs(value - expected) > tableau.tolerance:
        raise ValueError(f"tableau {tableau.name!r}: {condition} fails: got {_show(value)}, "
                         f"expected {_show(expected)} (off by {float(value - expected):.3g}, "
                         f"tolerance {float(tableau.tolerance):g})")


def _check_shapes(tableau):
    stages = len(tableau.c)
    if stages == 0:
        raise ValueError(f"tableau {tableau.name!r}: needs at least one stage")
    if len(tableau.a) != stages or any(len(row) != i for i, row in enumerate(tableau.a)):
        raise ValueError(f"tableau {tableau.name!r}: a must be strictly lower triangular, one "
                         "row per stage")
    if len(tableau.b) != stages or (tableau.b_hat is not None and len(tableau.b_hat) != stages):
        raise ValueError(f"tableau {tableau.name!r}: b and b_hat need one weight per stage")
    if (tableau.b_hat is None) != (tableau.error_order is None):
        raise ValueError(f"tableau {tableau.name!r}: b_hat and error_order go together")
    if tableau.error_order is not None:
        check_positive_int(f"tableau {tableau.name!r}: error_order", tableau.error_order)
    if tableau.dense is not None and len(tableau.dense.weights) != stages:
        raise ValueError(f"tableau {tableau.name!r}: dense output needs one polynomial per stage")


def _check_consistency(tableau):
    for i, (c_i, row) in enumerate(zip(tableau.c, tableau.a)):
        _check_equal(tableau, sum(row), c_i, f"row sum of a equals c in row {i}")
    _check_equal(tableau, sum(tableau.b), 1, "sum of b equals 1")
    if tableau.adaptive:
        _check_equal(tableau, sum(tableau.b_error), 0, "sum of b_error equals 0")


def _check_order_conditions(tableau, label, weights, order):
    for tree in _trees_up_to(order, smallest=2):  # size 1 is "sum of b equals 1"
        value = sum(w * phi for w, phi in zip(weights, _elementary_weights(tree, tableau.a)))
        _check_equal(tableau, value, F(1, _density(tree)),
                     f"order condition sum_i {label}_i Phi_i = 1/gamma for the tree "
                     f"{_tree_name(tree)} (order {_size(tree)})")


def _check_dense_output(tableau):
    dense = tableau.dense
    for i, (at_one, b_i) in enumerate(zip(dense.at(F(1)), tableau.b)):
        _check_equal(tableau, at_one, b_i, f"dense output {dense.name!r} at theta = 1 equals b "
                                           f"(stage {i})")
    for tree in _trees_up_to(dense.order):
        phi = _elementary_weights(tree, tableau.a)
        for power in range(1, len(dense.weights[0]) + 1):
            value = sum(row[power - 1] * phi_i for row, phi_i in zip(dense.weights, phi))
            expected = F(1, _density(tree)) if power == _size(tree) else F(0)
            _check_equal(tableau, value, expected,
                         f"dense output {dense.name!r} order condition sum_i b_i(theta) Phi_i "
                         f"= theta^|t|/gamma for the tree {_tree_name(tree)} (order "
                         f"{_size(tree)}), coefficient of theta^{power}")


def _hermite_weights(b):
    """Cubic Hermite interpolation inside an FSAL step, as per-stage polynomials.

    With y1 = y0 + h sum_i b_i k_i, f0 = k_1 and f1 = k_s (FSAL), Hermite's cubic through
    (y0, h f0) and (y1, h f1) is y0 + (3 theta^2 - 2 theta^3)(y1 - y0)
    + (theta - 2 theta^2 + theta^3) h f0 + (theta^3 - theta^2) h f1. Its local error is O(h^4).
    Returns, for each stage, the coefficients of theta, theta^2 and theta^3.
    """
    rows = []
    for i, b_i in enumerate(b):
        first, final = int(i == 0), int(i == len(b) - 1)  # k_1 is f0, k_s is f1
        rows.append((first, 3 * b_i - 2 * first - final, -2 * b_i + first + final))
    return tuple(rows)


def _plus_bubble(weights, d):
    """Add d_i theta^2 (1 - theta)^2 = d_i (theta^2 - 2 theta^3 + theta^4) to stage i."""
    return tuple((w1, w2 + d_i, w3 - 2 * d_i, d_i) for (w1, w2, w3), d_i in zip(weights, d))


# ---------------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------------

EULER = ButcherTableau("euler", c=[0], a=[[]], b=[1], order=1, reference="Euler (1768)")

MIDPOINT = ButcherTableau("midpoint", c=[0, F(1, 2)], a=[[], [F(1, 2)]], b=[0, 1], order=2,
                          reference="explicit midpoint rule")

HEUN = ButcherTableau("heun", c=[0, 1], a=[[], [1]], b=[F(1, 2), F(1, 2)], order=2,
                      reference="Heun's method (explicit trapezoidal rule)")

RK4 = ButcherTableau("rk4", c=[0, F(1, 2), F(1, 2), 1],
                     a=[[], [F(1, 2)], [0, F(1, 2)], [0, 0, 1]],
                     b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)], order=4,
                     reference="classic Runge-Kutta (Kutta 1901), the 1/6 rule")

_BOSH3_B = [F(2, 9), F(1, 3), F(4, 9), 0]
BOSH3 = ButcherTableau(
    "bosh3", c=[0, F(1, 2), F(3, 4), 1],
    a=[[], [F(1, 2)], [0, F(3, 4)], _BOSH3_B[:3]],
    b=_BOSH3_B,
    b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
    order=3, error_order=2,
    dense=DenseOutput("hermite", _hermite_weights(_BOSH3_B), order=3,
                      reference="cubic Hermite interpolation (Hairer, Norsett & Wanner I, "
                                "sec. II.6)"),
    reference="Bogacki & Shampine (1989), Appl. Math. Lett. 2(4)")

_DOPRI5_B = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
# Hairer's continuous extension of DOPRI5 is the cubic Hermite interpolant plus
# theta^2 (1 - theta)^2 h sum_i d_i k_i (Hairer, Norsett & Wanner I, sec. II.6, and the dense
# output of their code DOPRI5), with these d_i:
_DOPRI5_D = [F(-12715105075, 11282082432), 0, F(87487479700, 32700410799),
             F(-10690763975, 1880347072), F(701980252875, 199316789632),
             F(-1453857185, 822651844), F(69997945, 29380423)]
DOPRI5 = ButcherTableau(
    "dopri5", c=[0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
    a=[[],
       [F(1, 5)],
       [F(3, 40), F(9, 40)],
       [F(44, 45), F(-56, 15), F(32, 9)],
       [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
       [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
       _DOPRI5_B[:6]],
    b=_DOPRI5_B,
    b_hat=[F(5179, 57600), 0, F(7571, 16695), F(393, 640), F(-92097, 339200), F(187, 2100),
           F(1, 40)],
    order=5, error_order=4,
    dense=DenseOutput("dopri5", _plus_bubble(_hermite_weights(_DOPRI5_B), _DOPRI5_D), order=4,
                      reference="Hairer, Norsett & Wanner I, sec. II.6"),
    reference="Dormand & Prince (1980), J. Comput. Appl. Math. 6(1)")

_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
            -3.290069515436081, 2.324710524099774, 0]
TSIT5 = ButcherTableau(
    "tsit5", c=[0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1],
    a=[[],
       [0.161],
       [-0.008480655492356989, 0.335480655492357],
       [2.897153057105493, -6.359448489975075, 4.3622954328695815],
       [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
       [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
        -0.028269050394068383],
       _TSIT5_B[:6]],
    b=_TSIT5_B,
    # b_error = b - b_hat is published directly (Tsitouras' "btilde"); b_hat = b - b_error.
    b_hat=[b - e for b, e in zip(_TSIT5_B, [-0.00178001105222577714, -0.0008164344596567469,
                                            0.007880878010261995, -0.1447110071732629,
                                            0.5823571654525552, -0.45808210592918697,
                                            1 / 66])],
    order=5, error_order=4,
    # Tsitouras' own 4th-order continuous extension (Tsitouras 2011, sec. 3; coefficients as
    # in OrdinaryDiffEq's Tsit5Interp). Cubic Hermite would not do: its O(h^4) local error
    # exceeds tsit5's own O(h^6) step error, so outputs between steps at tight tolerances
    # would be far less accurate than the steps.
    dense=DenseOutput("tsit5", [
        (1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216),
        (0.0, 0.13169999999999998, -0.2234, 0.1017),
        (0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253),
        (0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902),
        (0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928),
        (0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661),
        (0.0, 1.5, -4.0, 2.5)], order=4, reference="Tsitouras (2011), sec. 3"),
    # The coefficients are published as 16-digit decimals, not fractions, so the conditions
    # hold only up to the rounding of those decimals: the largest residual is 2.5e-13 (an
    # order condition of the dense output, whose coefficients reach 88), while the conditions
    # one order too high miss by 2e-4 or more.
    tolerance=1e-12,
    reference="Tsitouras (2011), Comput. Math. Appl. 62(2)")

TABLEAUX = {t.name: t for t in (EULER, MIDPOINT, HEUN, RK4, BOSH3, DOPRI5, TSIT5)}
