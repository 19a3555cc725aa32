"""Guarantee 8: bad input raises TypeError/ValueError at the call, naming the argument."""

from __future__ import annotations

import functools
import math
import re
import sqlite3
from typing import Any

import pytest

from threadkit import ResourceWorker, SerialExecutor

from .conftest import WAIT


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


# -- mistakes a newcomer makes, caught where they are made ---------------------------


def _resource_passed(kind: str) -> str:
    return (
        f"the factory of worker 'db' is a '{kind}' object, whose call failed: pass a function "
        "that makes the resource, such as lambda: sqlite3.connect(path), not the resource "
        "itself; the factory is called in the owner thread, so that the resource belongs to it"
    )


def test_passing_a_sqlite_connection_instead_of_a_factory_says_so_at_start() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        w = ResourceWorker(conn, name="db")  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=rf"^{re.escape(_resource_passed('Connection'))}$"
        ) as info:
            w.start()
        # The error SQLite raised in the owner thread, kept as the cause.
        assert isinstance(info.value.__cause__, sqlite3.ProgrammingError)
        assert w.closed
    finally:
        conn.close()


def test_passing_a_callable_object_that_needs_arguments_instead_of_a_factory_says_so() -> None:
    class Client:
        def __call__(self, query: str) -> str:
            return query

    w = ResourceWorker(Client(), name="db")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"^{re.escape(_resource_passed('Client'))}$") as info:
        w.start()
    assert isinstance(info.value.__cause__, TypeError)


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(sqlite3.connect, "/nonexistent-dir/app.db"),
        lambda: sqlite3.connect("/nonexistent-dir/app.db"),
    ],
    ids=["partial", "lambda"],
)
def test_a_real_factory_that_fails_keeps_its_own_error(factory: Any) -> None:
    with pytest.raises(sqlite3.OperationalError, match=r"^unable to open database file$"):
        ResourceWorker(factory).start()


def test_a_factory_object_that_fails_inside_keeps_its_own_error() -> None:
    class Factory:
        def __call__(self) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match=r"^disk full$"):
        ResourceWorker(Factory()).start()


_RESOURCE_FIRST = (
    "a worker passes its resource as the first argument, fn(resource, *args, **kwargs), and "
    "{name} takes no argument for it: write it as lambda resource: ..., or use a "
    "SerialExecutor for functions that take none"
)


def no_resource(x: int = 0) -> int:
    return x


@pytest.mark.parametrize("max_batch", [1, 4])
@pytest.mark.parametrize("how", ["call", "submit", "post"])
def test_a_function_written_for_an_executor_fails_with_a_note_that_the_resource_comes_first(
    how: str, max_batch: int
) -> None:
    errors: list[BaseException] = []
    hooks: dict[str, Any] = {"end_batch": lambda _r: None} if max_batch > 1 else {}
    with ResourceWorker(list, error_hook=errors.append, max_batch=max_batch, **hooks) as w:
        for fn, args in (((lambda: 42), ()), (no_resource, (1,))):
            if how == "call":
                with pytest.raises(TypeError) as info:
                    w.call(fn, *args)
                error: BaseException = info.value
            elif how == "submit":
                error = w.submit(fn, *args).exception(WAIT)  # type: ignore[assignment]
            else:
                w.post(fn, *args)
                w.call(len)
                error = errors.pop()
            assert type(error) is TypeError  # the type is never changed
            name = repr(getattr(fn, "__qualname__", None))
            assert error.__notes__[0] == _RESOURCE_FIRST.format(name=name)


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (lambda r, *, k: k, ()),  # missing keyword: not about the resource
        (lambda r: r.missing(), ()),  # raised inside the function
        (lambda r: no_resource("a", "b"), ()),  # a TypeError from deeper down
    ],
)
def test_other_type_errors_get_no_note(fn: Any, args: tuple[Any, ...]) -> None:
    with ResourceWorker(list) as w, pytest.raises((TypeError, AttributeError)) as info:
        w.call(fn, *args)
    assert not getattr(info.value, "__notes__", None)


def test_an_executor_adds_no_note_since_it_passes_no_resource() -> None:
    with SerialExecutor() as ex:
        error = ex.submit(no_resource, 1, 2).exception(WAIT)
    assert type(error) is TypeError
    assert not getattr(error, "__notes__", None)
