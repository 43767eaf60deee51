"""Butcher tableaux: every explicit Runge-Kutta method in minode is data, run by one engine.

A tableau (c, a, b) defines the stages k_i = f(y + h sum_j a_ij k_j, t + c_i h) and the step
y_next = y + h sum_i b_i k_i. An embedded pair adds ``b_error`` = b - b_hat, the difference to a
lower-order solution, so that h sum_i b_error_i k_i estimates the local error (Hairer, Norsett &
Wanner, "Solving ODEs I", sec. II.4).
"""
from dataclasses import dataclass
from fractions import Fraction as F


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method.

    ``order`` is the order of ``b``; ``error_order`` the order of the embedded solution (the
    error estimate is O(h^(error_order + 1)), which sets the step-size controller's exponent).
    ``fsal``: the last stage is f at the new solution ("first same as last"), reused by the next
    step. ``dense`` names the interpolant between steps: "dopri5", "tsit5" or "hermite".
    """

    name: str
    c: tuple
    a: tuple
    b: tuple
    order: int
    b_error: tuple | None = None
    error_order: int | None = None
    fsal: bool = False
    dense: str = "hermite"
    reference: str = ""

    def __post_init__(self):
        stages = len(self.c)
        if len(self.a) != stages or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"tableau {self.name}: a must be strictly lower triangular")
        if len(self.b) != stages or (self.b_error is not None and len(self.b_error) != stages):
            raise ValueError(f"tableau {self.name}: b and b_error need one weight per stage")
        if self.b_error is not None and not self.fsal:
            # The adaptive loop reuses the last stage as the next k1 and for dense output.
            raise ValueError(f"tableau {self.name}: an embedded pair must be FSAL here")

    @property
    def adaptive(self):
        """True for an embedded pair, which can control its step size."""
        return self.b_error is not None


def _floats(rows):
    return tuple(tuple(float(x) for x in row) for row in rows)


def _tableau(name, c, a, b, order, b_hat=None, error_order=None, **kwargs):
    b_error = None if b_hat is None else tuple(float(x - y) for x, y in zip(b, b_hat))
    return ButcherTableau(name, tuple(float(x) for x in c), _floats(a), tuple(float(x) for x in b),
                          order, b_error, error_order, **kwargs)


EULER = _tableau("euler", c=[0], a=[[]], b=[1], order=1, reference="Euler (1768)")

MIDPOINT = _tableau("midpoint", c=[0, F(1, 2)], a=[[], [F(1, 2)]], b=[0, 1], order=2,
                    reference="explicit midpoint rule")

HEUN = _tableau("heun", c=[0, 1], a=[[], [1]], b=[F(1, 2), F(1, 2)], order=2,
                reference="Heun's method (explicit trapezoidal rule)")

RK4 = _tableau("rk4", c=[0, F(1, 2), F(1, 2), 1],
               a=[[], [F(1, 2)], [0, F(1, 2)], [0, 0, 1]],
               b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)], order=4,
               reference="classic Runge-Kutta (Kutta 1901), the 1/6 rule")

BOSH3 = _tableau(
    "bosh3", c=[0, F(1, 2), F(3, 4), 1],
    a=[[], [F(1, 2)], [0, F(3, 4)], [F(2, 9), F(1, 3), F(4, 9)]],
    b=[F(2, 9), F(1, 3), F(4, 9), 0],
    b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
    order=3, error_order=2, fsal=True,
    reference="Bogacki & Shampine (1989), Appl. Math. Lett. 2(4)")

_DOPRI5_B = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
DOPRI5 = _tableau(
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
    order=5, error_order=4, fsal=True, dense="dopri5",
    reference="Dormand & Prince (1980), J. Comput. Appl. Math. 6(1)")

_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
            -3.290069515436081, 2.324710524099774, 0]
TSIT5 = _tableau(
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
    order=5, error_order=4, fsal=True, dense="tsit5",
    reference="Tsitouras (2011), Comput. Math. Appl. 62(2)")

TABLEAUX = {t.name: t for t in (EULER, MIDPOINT, HEUN, RK4, BOSH3, DOPRI5, TSIT5)}
