#!/usr/bin/env bash
# Run pytest from the project's virtualenv. Exit 5 (nothing collected) is a failure here:
# a test command that runs no test must not look green.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
