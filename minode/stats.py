"""Solver statistics: how many function evaluations and steps a solve took."""
from dataclasses import dataclass, field, fields


@dataclass
class Counts:
    """Counters for one direction of a solve.

    ``jacobians`` counts the Jacobians df/dy an implicit method evaluated (each costs one
    evaluation of f, counted in ``nfe``, and one vector-Jacobian product per row,
    `minode.jacobian`); ``factorisations`` its LU factorisations (one per trial step). For
    ``scipy:`` methods, SciPy's own counts (``njev``, ``nlu``).
    """

    nfe: int = 0
    steps: int = 0
    rejected: int = 0
    jacobians: int = 0
    factorisations: int = 0

    def reset(self):
        """Set every counter back to zero."""
        for counter in fields(self):
            setattr(self, counter.name, 0)

    def add(self, other):
        """Add the counts of ``other`` to these."""
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    def __str__(self):
        text = f"{self.nfe} evaluations, {self.steps} steps ({self.rejected} rejected)"
        if self.jacobians or self.factorisations:
            text += f", {self.jacobians} Jacobians, {self.factorisations} LU factorisations"
        return text


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
        return f"forward: {self.forward}; backward: {self.backward}"
