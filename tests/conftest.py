"""Fixtures shared by the test modules."""

import pytest

import lstmfast


@pytest.fixture
def restore_threads():
    """The kernels' thread count and thread policy as they were before the test."""
    n, policy = lstmfast.get_num_threads(), lstmfast.get_thread_policy()
    yield
    lstmfast.set_num_threads(n)
    lstmfast.set_thread_policy(policy)
