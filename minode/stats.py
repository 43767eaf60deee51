"""Solver statistics: how many function evaluations and steps a solve took."""
from dataclasses import dataclass, field


@dataclass
class Counts:
    """Counters for one direction of a solve: evaluations of the vector field (``nfe``),
    steps accepted and rejected, Jacobian evaluations and LU factorisations (implicit
    methods)."""

    nfe: int = 0
    steps: int = 0
    rejected: int = 0
    jacobians: int = 0
    lu: int = 0

    def reset(self):
        """Set every counter back to zero."""
        self.nfe = self.steps = self.rejected = self.jacobians = self.lu = 0

    def add(self, other):
        """Add the counts of ``other`` to these."""
        self.nfe += other.nfe
        self.steps += other.steps
        self.rejected += other.rejected
        self.jacobians += other.jacobians
        self.lu += other.lu


@dataclass
class SolverStats:
    """What `minode.odeint` did, filled in place when passed as ``stats=``.

    ``forward`` counts the forward solve; ``backward`` the adjoint solve that runs when the
    gradient is taken with ``grad="adjoint"`` (with ``grad="backprop"`` the backward pass is
    autograd's and evaluates nothing). Counts accumulate over calls; call `reset` between them.
    """

    forward: Counts = field(default_factory=Counts)
    backward: Counts = field(default_factory=Counts)

    def reset(self):
        """Set every counter back to zero."""
        self.forward.reset()
        self.backward.reset()

    def __str__(self):
        f, b = self.forward, self.backward
        return (f"forward: {f.nfe} evaluations, {f.steps} steps ({f.rejected} rejected); "
                f"backward: {b.nfe} evaluations, {b.steps} steps ({b.rejected} rejected)")
