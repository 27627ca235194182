"""Shared pytest configuration. Fixture modules live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.keys",
    "tests.fixtures.hostile_http",
    "tests.fixtures.pgp",
    "tests.fixtures.rekor",
]
