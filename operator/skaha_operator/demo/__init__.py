"""`skaha-operator demo`: the whole product on one machine, in one command (docs/demo.md).

`table` is pure (rows, usable/failed, rendering), `stack` starts and stops the processes (local
control plane, simulator, operator) and `run` is the flow and its flags. Imports no kopf: the
operator runs as a child process, exactly as a user would start it.
"""

from skaha_operator.demo.run import main

__all__ = ["main"]
