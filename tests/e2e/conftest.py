"""Fixtures for the end-to-end tier: stacks that are always torn down, even on failure."""

from __future__ import annotations

import pytest

from .harness import Stack


@pytest.fixture(scope="module")
def stack(request):
    """One shared stack per test module: default settings, or the module's STACK_SETTINGS."""
    s = Stack(**getattr(request.module, "STACK_SETTINGS", {})).start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def stack_factory(cls=Stack):
    """Yields a factory for `cls` stacks with their own settings; tears them all down after."""
    made: list = []

    def make(**settings):
        s = cls(**settings)
        made.append(s)
        return s.start()

    try:
        yield make
    finally:
        for s in made:
            s.stop()
            s.cleanup()


@pytest.fixture
def make_stack():
    """A factory for stacks with their own settings, torn down after the test."""
    yield from stack_factory()


@pytest.fixture(autouse=True)
def _clean_upstream(request):
    """Each test starts with an empty upstream recording on the shared stack."""
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").reset_upstream()
    yield
