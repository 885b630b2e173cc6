"""Running scenarios on the simulated network: the client/server harness
(:mod:`.scenario`), event-driven endpoints (:mod:`.apps`) and the guided labs
(:mod:`.labs`)."""

from .scenario import Scenario

__all__ = ["Scenario"]
