"""Fixtures for the example-app tests: load an example by path, call it in-process."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples"

# django_driver.py and the tests share wsgi_call.py: make it importable by name.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def load_example(filename: str) -> ModuleType:
    """Import ``examples/<filename>`` under a private module name."""
    name = "porch_example_" + Path(filename).stem
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def example_loader() -> Callable[[str], ModuleType]:
    return load_example
