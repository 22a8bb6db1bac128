"""Allow `python -m skaha_operator`."""

from skaha_operator.cli import main

raise SystemExit(main())
