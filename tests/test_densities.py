"""minode.densities: the target energies of Rezende & Mohamed 2015 and log Z by quadrature."""
import numpy
import pytest
from numpy.testing import assert_allclose

from minode import densities
from minode.gradcheck import check_grads

# log Z of U1, U2c, U3c on [-7, 7]^2 from the calibration in the CNF issue (4 decimals).
CALIBRATION = {"U1": 1.8775, "U2c": 2.0221, "U3c": 2.5817}


@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_log_normalizer_matches_the_calibration_and_has_converged(name):
    energy = densities.ENERGIES[name]
    fine = densities.log_normalizer(energy)
    assert abs(fine - CALIBRATION[name]) < 1e-4
    assert abs(densities.log_normalizer(energy, limit=9.0, points=601) - fine) < 1e-8


def test_log_normalizer_of_a_gaussian_is_exact():
    log_z = densities.log_normalizer(lambda z: 0.5 * (z ** 2).sum(axis=1), points=501)
    assert_allclose(log_z, numpy.log(2 * numpy.pi), rtol=1e-10)


def test_energies_match_their_formulas_at_hand_picked_points():
    z = numpy.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # U1 at (2, 0): on the ring, at one mode; -log(1 + exp(-(4/0.6)^2/2)).
    assert_allclose(densities.u1(z[:1]), [-numpy.log1p(numpy.exp(-0.5 * (4 / 0.6) ** 2))],
                    atol=1e-15)
    # U2 at (0, 1): w1(0) = 0, so ((1 - 0)/0.4)^2/2; at (1, 0): w1(1) = 1.
    assert_allclose(densities.u2(z[1:]), [0.5 / 0.4 ** 2, 0.5 / 0.4 ** 2])
    # U3 at (1, 0): w1 = 1, w2 = 3, gaps -1 and 2.
    expected = -numpy.log(numpy.exp(-0.5 / 0.35 ** 2) + numpy.exp(-0.5 * (2 / 0.35) ** 2))
    assert_allclose(densities.u3(z[2:]), [expected])
    assert_allclose(densities.u2_confined(z) - densities.u2(z), (z[:, 0] / 4) ** 8)
    assert_allclose(densities.u3_confined(z) - densities.u3(z), (z[:, 0] / 4) ** 8)


@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_energy_gradients_match_central_differences(name):
    z = numpy.random.default_rng(0).standard_normal((5, 2)) * 2
    check_grads(lambda z: densities.ENERGIES[name](z).sum(), z)


def test_energies_refuse_points_that_are_not_2d():
    with pytest.raises(ValueError, match="z must be an array of 2-D points"):
        densities.u1(numpy.ones((4, 3)))
