"""``central.domain`` hands out its names from their modules only when asked."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import central.domain as domain


@pytest.mark.parametrize("name", domain.__all__)
def test_each_name_of_the_package_is_the_one_of_its_module(name: str) -> None:
    module = importlib.import_module(f"central.domain.{domain._MODULE_OF[name]}")
    assert getattr(domain, name) is getattr(module, name)


def test_a_star_import_gives_every_name_and_nothing_unknown_is_made_up() -> None:
    assert sorted(domain._MODULE_OF) == sorted(domain.__all__)
    namespace: dict[str, object] = {}
    exec("from central.domain import *", namespace)
    assert set(domain.__all__) <= set(namespace)
    with pytest.raises(AttributeError):
        domain.no_such_name  # noqa: B018


def test_the_errors_and_the_model_come_without_the_queue() -> None:
    code = ("import json, sys, central.domain.errors, central.domain.model;"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('central'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)
    assert json.loads(done.stdout) == ["central", "central.domain", "central.domain.errors",
                                       "central.domain.model"]
