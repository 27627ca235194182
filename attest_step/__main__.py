"""Allow ``python -m attest_step``."""

from attest_step.cli.main import main

main()
