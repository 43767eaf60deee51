"""The adjoint method's memory does not grow with the number of solver steps (Chen et al. 2018,
sec. 2). Uses benchmarks/adjoint_memory.py, which also prints the backprop numbers."""
from scripts import load_script


def test_adjoint_peak_memory_stays_flat_from_10_to_1000_steps():
    benchmark = load_script("benchmarks/adjoint_memory.py")
    small, large = benchmark.peak_memories("adjoint")
    # Generous: 100x the steps may cost at most 2x the memory (measured: about 1.2x; backprop
    # grows about 100x on the same problem).
    assert large < 2 * small, (small, large)
