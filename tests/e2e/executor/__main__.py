"""``python -m tests.e2e.executor [TEST_DIR...] [--registry HOST:PORT]``."""

import sys

from tests.e2e.executor.catalog import main

sys.exit(main())
