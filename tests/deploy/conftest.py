"""The deploy tier reuses the end-to-end fixtures (stacks always torn down)."""

from tests.e2e.conftest import make_stack  # noqa: F401  (a fixture, used by name)
