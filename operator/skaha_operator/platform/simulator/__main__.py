"""`python -m skaha_operator.platform.simulator`: run the simulator in the foreground."""

import sys

from skaha_operator.platform.simulator.cli import main

sys.exit(main())
