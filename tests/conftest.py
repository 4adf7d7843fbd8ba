"""Shared pytest configuration: the full RTL matrix runs only when asked for."""
import pytest


def pytest_collection_modifyitems(config, items):
    # `pytest -m rtl_full` (or any -m expression) decides on its own; a plain
    # `pytest` skips the long full RTL matrix.
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="full RTL matrix: select it with -m rtl_full")
    for item in items:
        if "rtl_full" in item.keywords:
            item.add_marker(skip)
