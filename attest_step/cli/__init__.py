"""The ``attest-step`` command line."""
