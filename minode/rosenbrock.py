"""Rosenbrock methods: linearly implicit Runge-Kutta methods for stiff problems, as data.

A Rosenbrock method (Hairer & Wanner, "Solving ODEs II", sec. IV.7, eq. (7.4)) takes a step of
dy/dt = f(y, t) from y0 with s stages, each one linear solve with the same matrix:

    (I - h gamma J) k_i = h f(y0 + sum_{j<i} alpha_ij k_j, t0 + alpha_i h)
                          + h J sum_{j<i} gamma_ij k_j + gamma_i h^2 f_t,
    y1 = y0 + sum_i b_i k_i,

with J = df/dy and f_t = df/dt at (y0, t0), alpha_i = sum_j alpha_ij and gamma_i = sum_{j<=i}
gamma_ij (gamma_ii = gamma). There is no Newton iteration: one LU factorisation of
I - h gamma J per step serves every stage. The price is that J must be the exact Jacobian (the
order conditions assume it), so it is evaluated afresh at every step.

Codes store the method in the form that avoids the products J k_j (HW II, eq. (7.25)): with
u_i = sum_{j<=i} gamma_ij k_j and Gamma = (gamma_ij),

    (I / (h gamma) - J) u_i = f(y0 + sum_j a_ij u_j, t0 + alpha_i h) + sum_j (c_ij / h) u_j
                              + gamma_i h f_t,
    y1 = y0 + sum_i m_i u_i,

where (a_ij) = (alpha_ij) Gamma^-1, (c_ij) = diag(1 / gamma) - Gamma^-1, (m_i) = (b_i) Gamma^-1.
`RosenbrockMethod` takes these published numbers, recovers alpha_ij, gamma_ij and b_i from them
exactly (rational arithmetic), and checks on construction:

- consistency: the rows of (alpha_ij) sum to the published nodes alpha_i, those of Gamma to
  the published gamma_i; sum b = sum b_hat = 1;
- the order conditions of Rosenbrock methods (HW II, sec. IV.7, Table 7.1) for b up to
  ``order`` and for the embedded b_hat up to ``error_order``. They are Butcher's conditions
  sum_j b_j Phi_j(tau) = 1 / gamma(tau) over rooted trees tau, with one change: a vertex with
  exactly one child contributes beta_jk = alpha_jk + gamma_jk (k <= j, the diagonal included)
  instead of alpha_jk, since the J-terms of the method act where f' multiplies one factor;
- L-stability at infinity: the stability function R(z) = 1 + z b^T (I - z B)^-1 1, B = (beta_ij),
  vanishes at z = infinity, R(inf) = 1 - b^T B^-1 1 = 0 (and the same for b_hat);
- the dense output: it equals y1 at theta = 1, and meets the order conditions above with
  theta^|tau| / gamma(tau) on the right (HW II, sec. IV.7, "dense output") up to its order.

Numbers published as decimals are kept as the exact decimal Fractions and checked to
``tolerance``; the engine multiplies by ``floats``.

Why Rodas4 (HW II, sec. VI.4; Hairer's code RODAS): order 4 with an embedded order-3 solution,
stiffly accurate (the last stage sits at the solution, so R(inf) = 0: L-stable, no
oscillation from the stiff components) and so is the embedded solution; a dense output of
order 3 from the same stages; six stages and one LU per step, no Newton loop to fail to
converge. Rosenbrock codes suit moderate tolerances on small stiff systems (HW II, sec. IV.10),
which is what minode's stiff problems are, and the linear structure makes each step a short
chain of differentiable operations for backprop. The price: the exact Jacobian at every step.
"""
from dataclasses import dataclass, field
from fractions import Fraction as F

from minode.checks import check_nonnegative, check_positive_int
from minode.tableaux import (DenseOutput, _check_equal, _density, _exact_row, _floats, _set,
                             _size, _tree_name, _trees_up_to)


@dataclass(frozen=True)
class RosenbrockFloats:
    """A Rosenbrock method's coefficients as floats: what `minode.rosenbrock_step` multiplies by.

    ``dense`` is named as in `minode.tableaux.FloatCoefficients`, so that
    `minode.stepping.interpolate` evaluates the dense output of both kinds of method.
    """

    gamma: float
    alpha: tuple
    gamma_sums: tuple
    a: tuple
    c: tuple
    m: tuple
    m_error: tuple
    dense: tuple


@dataclass(frozen=True)
class RosenbrockMethod:
    """A Rosenbrock method in the form of HW II, eq. (7.25), given by its published numbers.

    ``gamma`` is the diagonal gamma_ii; ``alpha`` the nodes alpha_i (stage times t0 + alpha_i h)
    and ``gamma_sums`` the gamma_i = sum_{j<=i} gamma_ij that weigh f_t; ``a`` and ``c`` are the
    strictly lower triangular rows of (a_ij) and (c_ij); ``m`` and ``m_hat`` the weights of the
    solution and of the embedded one, of orders ``order`` and ``error_order``. ``dense`` is the
    continuous extension y(t0 + theta h) = y0 + sum_i w_i(theta) u_i, its polynomials w_i given
    as in `minode.tableaux.DenseOutput`. Ints, Fractions, or floats checked to ``tolerance``.

    Derived exactly: ``gamma_matrix`` (gamma_ij, diagonal included), ``alpha_matrix``
    (alpha_ij), ``b`` and ``b_hat``, the method in the form of eq. (7.4); ``floats`` for the
    engine, with ``m_error = m - m_hat`` (the error estimate is sum_i m_error_i u_i).
    """

    name: str
    gamma: object
    alpha: tuple
    gamma_sums: tuple
    a: tuple
    c: tuple
    m: tuple
    m_hat: tuple
    order: int
    error_order: int
    dense: DenseOutput
    tolerance: float = 0
    reference: str = ""
    gamma_matrix: tuple = field(init=False)
    alpha_matrix: tuple = field(init=False)
    b: tuple = field(init=False)
    b_hat: tuple = field(init=False)
    floats: RosenbrockFloats = field(init=False)

    def __post_init__(self):
        owner = f"tableau {self.name!r}"
        _set(self, gamma=_exact_row(owner, [self.gamma])[0],
             alpha=_exact_row(owner, self.alpha), gamma_sums=_exact_row(owner, self.gamma_sums),
             a=tuple(_exact_row(owner, row) for row in self.a),
             c=tuple(_exact_row(owner, row) for row in self.c),
             m=_exact_row(owner, self.m), m_hat=_exact_row(owner, self.m_hat))
        check_positive_int(f"{owner}: order", self.order)
        check_positive_int(f"{owner}: error_order", self.error_order)
        check_nonnegative(f"{owner}: tolerance", self.tolerance)
        _set(self, tolerance=F(self.tolerance))
        _check_shapes(self)
        if self.gamma <= 0:
            raise ValueError(f"{owner}: gamma must be positive (I - h gamma J is then "
                             f"invertible for every h > 0 when J's eigenvalues have negative "
                             f"real parts), got {self.gamma}")
        gamma_matrix = _gamma_matrix(self.gamma, self.c)
        _set(self, gamma_matrix=gamma_matrix,
             alpha_matrix=tuple(_row_times(row, gamma_matrix)[:i] for i, row in enumerate(self.a)),
             b=_row_times(self.m, gamma_matrix), b_hat=_row_times(self.m_hat, gamma_matrix))
        _check_consistency(self)
        beta = tuple(alpha_row + (0,) for alpha_row in self.alpha_matrix)
        beta = tuple(tuple(x + y for x, y in zip(beta_row, gamma_row))
                     for beta_row, gamma_row in zip(beta, gamma_matrix))
        _check_order_conditions(self, "b", self.b, self.order, beta)
        _check_order_conditions(self, "b_hat", self.b_hat, self.error_order, beta)
        _check_stiff_decay(self, "b", self.b, beta)
        _check_stiff_decay(self, "b_hat", self.b_hat, beta)
        _check_dense_output(self, beta)
        _set(self, floats=RosenbrockFloats(
            float(self.gamma), _floats(self.alpha), _floats(self.gamma_sums),
            tuple(_floats(row) for row in self.a), tuple(_floats(row) for row in self.c),
            _floats(self.m), _floats(x - y for x, y in zip(self.m, self.m_hat)),
            tuple(_floats(row) for row in self.dense.weights)))

    @property
    def adaptive(self):
        """True: the embedded solution controls the step size."""
        return True

    @property
    def stages(self):
        """The number of stages s (linear solves per step)."""
        return len(self.alpha)


def _check_shapes(method):
    stages = len(method.alpha)
    owner = f"tableau {method.name!r}"
    for label, rows in (("a", method.a), ("c", method.c)):
        if len(rows) != stages or any(len(row) != i for i, row in enumerate(rows)):
            raise ValueError(f"{owner}: {label} must be strictly lower triangular, one row per "
                             f"stage ({stages} stages, from alpha)")
    for label, row in (("gamma_sums", method.gamma_sums), ("m", method.m),
                       ("m_hat", method.m_hat), ("dense", method.dense.weights)):
        if len(row) != stages:
            raise ValueError(f"{owner}: {label} needs one entry per stage ({stages} stages, "
                             f"from alpha), got {len(row)}")


def _gamma_matrix(gamma, c):
    """Gamma from Gamma^-1 = diag(1 / gamma) - (c_ij): forward substitution, exactly.

    Row i of Gamma solves sum_k Gamma_ik (Gamma^-1)_kj = delta_ij for j = i, i-1, ..., 0.
    Returned as lower triangular rows, the diagonal included.
    """
    def inverse_entry(k, j):
        return 1 / gamma if k == j else -c[k][j]

    rows = []
    for i in range(len(c)):
        row = [F(0)] * (i + 1)
        row[i] = gamma
        for j in range(i - 1, -1, -1):
            row[j] = -sum(row[k] * inverse_entry(k, j) for k in range(j + 1, i + 1)) * gamma
        rows.append(tuple(row))
    return tuple(rows)


def _row_times(row, lower):
    """The row vector ``row`` times the lower triangular ``lower`` (rows incl. diagonal); a short
    ``row`` is padded with zeros."""
    return tuple(sum(row[i] * lower[i][j] for i in range(j, len(row)))
                 for j in range(len(lower)))


def _check_consistency(method):
    for i, (alpha_i, row) in enumerate(zip(method.alpha, method.alpha_matrix)):
        _check_equal(method, sum(row), alpha_i, f"row sum of alpha_ij equals alpha_i in row {i}")
    for i, (gamma_i, row) in enumerate(zip(method.gamma_sums, method.gamma_matrix)):
        _check_equal(method, sum(row), gamma_i, f"row sum of gamma_ij equals gamma_i in row {i}")
    _check_equal(method, sum(method.b), 1, "sum of b equals 1")
    _check_equal(method, sum(method.b_hat), 1, "sum of b_hat equals 1")


def _elementary_weights(tree, alpha, beta):
    """Phi_j(tau) of a Rosenbrock method for every stage j (HW II, sec. IV.7).

    1 for the single vertex; sum_k beta_jk Phi_k(child) for a vertex with one child (where the
    method's J-terms act); prod_children sum_k alpha_jk Phi_k(child) for two or more.
    """
    if len(tree) == 1:
        inner = _elementary_weights(tree[0], alpha, beta)
        return [sum(x * phi for x, phi in zip(row, inner)) for row in beta]
    result = [F(1)] * len(alpha)
    for subtree in tree:
        inner = _elementary_weights(subtree, alpha, beta)
        result = [r * sum(x * phi for x, phi in zip(row, inner))
                  for r, row in zip(result, alpha)]
    return result


def _check_order_conditions(method, label, weights, order, beta):
    for tree in _trees_up_to(order, smallest=2):  # size 1 is "sum of b equals 1"
        phi = _elementary_weights(tree, method.alpha_matrix, beta)
        _check_equal(method, sum(w * p for w, p in zip(weights, phi)), F(1, _density(tree)),
                     f"order condition sum_j {label}_j Phi_j = 1/gamma for the tree "
                     f"{_tree_name(tree)} (order {_size(tree)})")


def _check_stiff_decay(method, label, weights, beta):
    """R(inf) = 1 - weights^T B^-1 1 = 0, with B^-1 1 by forward substitution."""
    x = []
    for i, row in enumerate(beta):
        x.append((1 - sum(row[j] * x[j] for j in range(i))) / row[i])
    _check_equal(method, 1 - sum(w * x_i for w, x_i in zip(weights, x)), 0,
                 f"L-stability: the stability function of {label} vanishes at infinity")


def _check_dense_output(method, beta):
    dense = method.dense
    for i, (at_one, m_i) in enumerate(zip(dense.at(F(1)), method.m)):
        _check_equal(method, at_one, m_i, f"dense output {dense.name!r} at theta = 1 equals m "
                                          f"(stage {i})")
    # The dense output's weights of the k_j: w(theta)^T Gamma, one polynomial per stage.
    degree = len(dense.weights[0])
    weights_k = [_row_times([row[power] for row in dense.weights], method.gamma_matrix)
                 for power in range(degree)]
    for tree in _trees_up_to(dense.order):
        phi = _elementary_weights(tree, method.alpha_matrix, beta)
        for power in range(1, degree + 1):
            value = sum(w * p for w, p in zip(weights_k[power - 1], phi))
            expected = F(1, _density(tree)) if power == _size(tree) else F(0)
            _check_equal(method, value, expected,
                         f"dense output {dense.name!r} order condition sum_j b_j(theta) Phi_j "
                         f"= theta^|t|/gamma for the tree {_tree_name(tree)} (order "
                         f"{_size(tree)}), coefficient of theta^{power}")


def _rodas_dense(m, h2, h3):
    """RODAS's dense output y0 + theta (y1 - y0) + theta (1 - theta) (sum h2_i u_i
    + theta sum h3_i u_i) as per-stage polynomials w_i(theta) = (m_i + h2_i) theta
    + (h3_i - h2_i) theta^2 - h3_i theta^3 (y1 - y0 = sum m_i u_i)."""
    return tuple((m_i + p, q - p, -q) for m_i, p, q in zip(m, h2, h3))


# ---------------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------------

# Hairer's RODAS, METH=1 (rodas.f, subroutine RODCOE; HW II, sec. VI.4). gamma, the nodes and
# the beta_i' = alpha_i + gamma_i - gamma (0.0317, 0.0635, 0.3438) are the method's free
# parameters, published exactly; gamma_4 = 0.3438 + 0.25 - 0.63 = -0.0362 exactly (rodas.f
# prints its rounding, -0.3620000000000023D-01). Stages 5 and 6 sit at alpha = 1 with
# gamma_5 = gamma_6 = 0; y1 is stage 6's argument plus u_6, the embedded solution stage 6's
# argument itself (so m_error = (0, 0, 0, 0, 0, 1): the error estimate is u_6). Every other
# number is a 16-digit decimal from rodas.f.
_RODAS4_A5 = [F("1.221224509226641"), F("6.019134481288629"), F("12.53708332932087"),
              F("-0.6878860361058950")]
_RODAS4_M = _RODAS4_A5 + [1, 1]
RODAS4 = RosenbrockMethod(
    "rodas4",
    gamma=F("0.25"),
    alpha=[0, F("0.386"), F("0.21"), F("0.63"), 1, 1],
    gamma_sums=[F("0.25"), F("-0.1043"), F("0.1035"), F("-0.0362"), 0, 0],
    a=[[],
       [F("1.544")],
       [F("0.9466785280815826"), F("0.2557011698983284")],
       [F("3.314825187068521"), F("2.896124015972201"), F("0.9986419139977817")],
       _RODAS4_A5,
       _RODAS4_A5 + [1]],
    c=[[],
       [F("-5.6688")],
       [F("-2.430093356833875"), F("-0.2063599157091915")],
       [F("-0.1073529058151375"), F("-9.594562251023355"), F("-20.47028614809616")],
       [F("7.496443313967647"), F("-10.24680431464352"), F("-33.99990352819905"),
        F("11.70890893206160")],
       [F("8.083246795921522"), F("-7.981132988064893"), F("-31.52159432874371"),
        F("16.31930543123136"), F("-6.058818238834054")]],
    m=_RODAS4_M,
    m_hat=_RODAS4_A5 + [1, 0],
    order=4, error_order=3,
    dense=DenseOutput("rodas4", _rodas_dense(
        _RODAS4_M,
        [F("10.12623508344586"), F("-7.487995877610167"), F("-34.80091861555747"),
         F("-7.992771707568823"), F("1.025137723295662"), 0],
        [F("-0.6762803392801253"), F("6.087714651680015"), F("16.43084320892478"),
         F("24.76722511418386"), F("-6.594389125716872"), 0]),
        order=3, reference="Hairer's RODAS, rodas.f (subroutine RODCOE, METH=1)"),
    # The 16-digit decimals satisfy the conditions up to their rounding: the largest residual
    # is 2.1e-15 (an order condition of the dense output), while the conditions one order too
    # high that the method does not meet miss by 5.6e-5 or more.
    tolerance=1e-14,
    reference="Hairer & Wanner, Solving ODEs II (1996), sec. VI.4; Hairer's code RODAS")

ROSENBROCK_METHODS = {method.name: method for method in (RODAS4,)}
