"""Guarantee 8: bad input raises TypeError/ValueError at the call, naming the argument."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from threadkit import ResourceWorker


def factory() -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"factory": 3}, TypeError, "factory must be callable, got 'int'"),
        ({"factory": "db"}, TypeError, "factory must be callable, got 'str'"),
        (
            {},
            TypeError,
            "ResourceWorker() needs a factory callable (or a subclass overriding on_open())",
        ),
        ({"factory": factory, "close": 3}, TypeError, "close must be callable, got 'int'"),
        ({"factory": factory, "name": 3}, TypeError, "name must be a str or None, got 'int'"),
        ({"factory": factory, "name": b"db"}, TypeError, "name must be a str or None, got 'bytes'"),
        ({"factory": factory, "maxsize": "3"}, TypeError, "maxsize must be an int, got 'str'"),
        ({"factory": factory, "maxsize": 1.0}, TypeError, "maxsize must be an int, got 'float'"),
        ({"factory": factory, "maxsize": True}, TypeError, "maxsize must be an int, got 'bool'"),
        (
            {"factory": factory, "maxsize": None},
            TypeError,
            "maxsize must be an int, got 'NoneType'",
        ),
        ({"factory": factory, "maxsize": -1}, ValueError, "maxsize must be >= 0, got -1"),
        (
            {"factory": factory, "maxsize": 1, "put_timeout": "1"},
            TypeError,
            "put_timeout must be a number or None, got 'str'",
        ),
        (
            {"factory": factory, "maxsize": 1, "put_timeout": True},
            TypeError,
            "put_timeout must be a number or None, got 'bool'",
        ),
        (
            {"factory": factory, "maxsize": 1, "put_timeout": -0.5},
            ValueError,
            "put_timeout must be >= 0, got -0.5",
        ),
        (
            {"factory": factory, "maxsize": 1, "put_timeout": math.nan},
            ValueError,
            "put_timeout must be >= 0, got nan",
        ),
        (
            {"factory": factory, "maxsize": 1, "put_timeout": math.inf},
            ValueError,
            "put_timeout must be finite (None waits without limit), got inf",
        ),
        (
            {"factory": factory, "put_timeout": 1},
            ValueError,
            "put_timeout needs a bounded mailbox (maxsize > 0)",
        ),
        (
            {"factory": factory, "error_hook": "log"},
            TypeError,
            "error_hook must be callable, got 'str'",
        ),
    ],
)
def test_bad_constructor_arguments_are_refused_with_a_message_naming_them(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        ResourceWorker(**kwargs)


@pytest.mark.parametrize("method", ["submit", "call", "post"])
@pytest.mark.parametrize(("fn", "type_name"), [(3, "int"), (None, "NoneType"), ("f", "str")])
def test_a_request_that_is_not_callable_raises_type_error_naming_the_method(
    method: str, fn: object, type_name: str
) -> None:
    with ResourceWorker(factory) as w:
        with pytest.raises(
            TypeError, match=f"^{re.escape(f'{method}() needs a callable, got {type_name!r}')}$"
        ):
            getattr(w, method)(fn)
        # Nothing was queued, and the worker goes on.
        assert w.pending == 0
        assert w.call(lambda r: "alive") == "alive"


def test_valid_edge_values_are_accepted() -> None:
    ResourceWorker(factory, maxsize=0, name="")
    ResourceWorker(factory, maxsize=1, put_timeout=0)
    ResourceWorker(factory, maxsize=1, put_timeout=0.5)
    ResourceWorker(factory, maxsize=1, put_timeout=None)
    ResourceWorker(factory, close=None, error_hook=None)
