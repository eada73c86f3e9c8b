"""Every error has one root and also the builtin it resembles, and a stable code."""

from __future__ import annotations

import inspect

import pytest

from central.domain import errors
from central.domain.errors import NextupError, SiteClosed

SPECIFIC = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, NextupError) and cls is not NextupError
]


@pytest.mark.parametrize("cls", SPECIFIC, ids=lambda c: c.__name__)
def test_each_error_is_a_nextup_error_and_a_builtin_error(cls):
    builtin = [
        b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)
    ]
    assert builtin, f"{cls.__name__} subclasses no builtin error"


def test_error_codes_are_distinct():
    codes = [cls.code for cls in SPECIFIC]
    assert len(codes) == len(set(codes))


def test_the_message_is_the_first_argument_or_the_class_name():
    assert errors.UnknownService("There is no service 'x'").message == "There is no service 'x'"
    assert errors.UnknownService().message == "UnknownService"


def test_site_closed_carries_when_it_opens():
    assert SiteClosed("closed").opens_at is None
