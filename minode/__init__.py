"""minode: Neural Ordinary Differential Equations in NumPy + autograd, readable next to the paper.

Chen, Rubanova, Bettencourt, Duvenaud (2018), "Neural Ordinary Differential Equations", NeurIPS.
"""
__version__ = "0.1.0"

from minode.integrate import SolverError
from minode.odeint import odeint
from minode.stats import SolverStats

__all__ = ["odeint", "SolverStats", "SolverError", "__version__"]
