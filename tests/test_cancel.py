from __future__ import annotations

import gc
import logging
import pickle
import threading
import weakref
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import threadkit
from threadkit._cancel import _bind_token

from .conftest import WAIT

# -- cancel, cancelled, reason ------------------------------------------------------


def test_a_new_token_is_not_cancelled() -> None:
    token = threadkit.CancelToken()
    assert not token.cancelled
    assert token.reason is None
    token.raise_if_cancelled()


def test_cancel_returns_true_once_and_keeps_the_first_reason() -> None:
    token = threadkit.CancelToken()
    assert token.cancel("first") is True
    assert token.cancel("second") is False
    assert token.cancelled
    assert token.reason == "first"


def test_raise_if_cancelled_raises_cancelled_with_the_reason() -> None:
    token = threadkit.CancelToken()
    token.cancel("shutting down")
    with pytest.raises(threadkit.Cancelled, match=r"^cancelled: shutting down$") as info:
        token.raise_if_cancelled()
    assert info.value.reason == "shutting down"


def test_cancelled_without_a_reason_says_cancelled() -> None:
    token = threadkit.CancelToken()
    token.cancel()
    with pytest.raises(threadkit.Cancelled, match=r"^cancelled$"):
        token.raise_if_cancelled()


def test_cancelled_is_not_swallowed_by_except_exception() -> None:
    token = threadkit.CancelToken()
    token.cancel()
    swallowed = False

    def careless() -> None:
        nonlocal swallowed
        try:
            token.raise_if_cancelled()
        except Exception:
            swallowed = True

    with pytest.raises(threadkit.Cancelled):
        careless()
    assert not swallowed
    assert issubclass(threadkit.Cancelled, BaseException)
    assert not issubclass(threadkit.Cancelled, Exception)


def test_cancelled_survives_pickling_with_its_reason() -> None:
    exc = pickle.loads(pickle.dumps(threadkit.Cancelled("why")))
    assert isinstance(exc, threadkit.Cancelled)
    assert exc.reason == "why"
    assert str(exc) == "cancelled: why"


# -- wait ---------------------------------------------------------------------------


def test_wait_wakes_when_another_thread_cancels() -> None:
    token = threadkit.CancelToken()
    waiting = threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        waiting.set()
        results.append(token.wait(WAIT))

    t = threading.Thread(target=waiter)
    t.start()
    assert waiting.wait(WAIT)
    token.cancel()
    t.join(WAIT)
    assert results == [True]


def test_wait_returns_false_when_the_timeout_expires() -> None:
    assert threadkit.CancelToken().wait(0.01) is False


def test_wait_returns_true_at_once_on_a_cancelled_token() -> None:
    token = threadkit.CancelToken()
    token.cancel()
    assert token.wait() is True
    assert token.wait(0) is True


def test_wait_rejects_a_negative_timeout() -> None:
    with pytest.raises(ValueError, match=r"^timeout must be >= 0, got -1$"):
        threadkit.CancelToken().wait(-1)


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (float("nan"), r"^timeout must be >= 0, got nan$"),
        (float("-inf"), r"^timeout must be >= 0, got -inf$"),
        (float("inf"), r"^timeout must be finite \(None waits without limit\), got inf$"),
    ],
)
def test_wait_refuses_nan_and_infinity(timeout: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        threadkit.CancelToken().wait(timeout)


def test_wait_rejects_a_timeout_that_is_not_a_number() -> None:
    with pytest.raises(TypeError, match=r"^timeout must be a number or None, got 'str'$"):
        threadkit.CancelToken().wait("1")  # type: ignore[arg-type]


# -- on_cancel ----------------------------------------------------------------------


def test_callbacks_run_in_the_cancelling_thread_in_registration_order() -> None:
    token = threadkit.CancelToken()
    calls: list[tuple[str, threading.Thread]] = []
    token.on_cancel(lambda: calls.append(("a", threading.current_thread())))
    token.on_cancel(lambda: calls.append(("b", threading.current_thread())))
    t = threading.Thread(target=token.cancel)
    t.start()
    t.join(WAIT)
    assert calls == [("a", t), ("b", t)]


def test_a_callback_registered_on_a_cancelled_token_runs_at_once_in_the_caller() -> None:
    token = threadkit.CancelToken()
    token.cancel()
    calls: list[threading.Thread] = []
    registration = token.on_cancel(lambda: calls.append(threading.current_thread()))
    assert calls == [threading.current_thread()]
    assert registration.remove() is False


def test_a_removed_callback_never_runs() -> None:
    token = threadkit.CancelToken()
    calls: list[str] = []
    registration = token.on_cancel(lambda: calls.append("x"))
    assert registration.remove() is True
    assert registration.remove() is False
    token.cancel()
    assert calls == []


def test_the_registration_as_a_context_manager_removes_the_callback() -> None:
    token = threadkit.CancelToken()
    calls: list[str] = []
    with token.on_cancel(lambda: calls.append("x")):
        pass
    token.cancel()
    assert calls == []


def test_remove_after_the_callback_ran_returns_false() -> None:
    token = threadkit.CancelToken()
    registration = token.on_cancel(lambda: None)
    token.cancel()
    assert registration.remove() is False


def test_a_raising_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = threadkit.CancelToken()
    calls: list[str] = []

    def bad() -> None:
        raise ValueError("bad callback")

    token.on_cancel(bad)
    token.on_cancel(lambda: calls.append("after"))
    with caplog.at_level(logging.ERROR, logger="threadkit"):
        assert token.cancel() is True
    assert calls == ["after"]
    [record] = caplog.records
    assert record.getMessage().startswith("cancel callback")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_a_keyboard_interrupt_in_a_callback_is_reraised_after_the_others_ran() -> None:
    token = threadkit.CancelToken()
    calls: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    token.on_cancel(interrupt)
    token.on_cancel(lambda: calls.append("after"))
    with pytest.raises(KeyboardInterrupt):
        token.cancel()
    assert calls == ["after"]
    assert token.cancelled


def test_remove_waits_for_the_callback_running_in_another_thread() -> None:
    token = threadkit.CancelToken()
    entered = threading.Event()
    release = threading.Event()
    removed = threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(WAIT)

    registration = token.on_cancel(slow)
    canceller = threading.Thread(target=token.cancel)
    canceller.start()
    assert entered.wait(WAIT)
    results: list[bool] = []

    def remove() -> None:
        results.append(registration.remove())
        removed.set()

    remover = threading.Thread(target=remove)
    remover.start()
    assert not removed.wait(0.05)  # still inside the callback
    release.set()
    assert removed.wait(WAIT)
    assert results == [False]
    canceller.join(WAIT)
    remover.join(WAIT)


def test_remove_from_inside_the_callback_does_not_wait_for_itself() -> None:
    token = threadkit.CancelToken()
    results: list[bool] = []
    holder: list[threadkit.CancelRegistration] = []
    holder.append(token.on_cancel(lambda: results.append(holder[0].remove())))
    token.cancel()
    assert results == [False]


def test_removing_a_callback_that_has_not_started_wins_during_a_concurrent_cancel() -> None:
    token = threadkit.CancelToken()
    first_entered = threading.Event()
    release_first = threading.Event()
    calls: list[str] = []

    def first() -> None:
        first_entered.set()
        release_first.wait(WAIT)

    token.on_cancel(first)
    second = token.on_cancel(lambda: calls.append("second"))
    canceller = threading.Thread(target=token.cancel)
    canceller.start()
    try:
        assert first_entered.wait(WAIT)
        # cancel() is inside the first callback; the second has not started.
        # remove() must not wait for the first one (it would time out here,
        # as the first only returns once release_first is set below).
        assert second.remove() is True
    finally:
        release_first.set()
        canceller.join(WAIT)
    assert not canceller.is_alive()
    assert calls == []


def test_remove_of_a_running_callback_waits_for_that_callback_only() -> None:
    token = threadkit.CancelToken()
    first_entered, release_first = threading.Event(), threading.Event()
    second_entered, release_second = threading.Event(), threading.Event()

    def first() -> None:
        first_entered.set()
        release_first.wait(WAIT)

    def second() -> None:
        second_entered.set()
        release_second.wait(WAIT)

    registration = token.on_cancel(first)
    token.on_cancel(second)
    canceller = threading.Thread(target=token.cancel)
    canceller.start()
    results: list[bool] = []
    removed = threading.Event()

    def remove() -> None:
        results.append(registration.remove())
        removed.set()

    remover = threading.Thread(target=remove)
    try:
        assert first_entered.wait(WAIT)
        remover.start()
        release_first.set()
        assert second_entered.wait(WAIT)
        # The second callback is still running: remove() of the first returns anyway.
        assert removed.wait(WAIT)
        assert not release_second.is_set()
    finally:
        release_first.set()
        release_second.set()
        canceller.join(WAIT)
        if remover.ident is not None:
            remover.join(WAIT)
    assert results == [False]


def test_the_cancelling_thread_removes_a_later_callback_without_waiting() -> None:
    token = threadkit.CancelToken()
    results: list[bool] = []
    calls: list[str] = []
    later: list[threadkit.CancelRegistration] = []
    token.on_cancel(lambda: results.append(later[0].remove()))
    later.append(token.on_cancel(lambda: calls.append("later")))
    token.cancel()
    assert results == [True]
    assert calls == []


def test_removing_a_callback_registered_on_the_token_outside_tasks_says_true_once() -> None:
    registration = threadkit.current_token().on_cancel(lambda: None)
    assert registration.remove() is True
    assert registration.remove() is False


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=6),
    to_remove=st.sets(st.integers(min_value=0, max_value=5)),
    pause=st.integers(min_value=0, max_value=5),
)
def test_remove_racing_cancel_either_wins_or_returns_after_the_callback_ended(
    count: int, to_remove: set[int], pause: int
) -> None:
    """Whatever the interleaving: removed (True) means never run; False means it ran and ended."""
    token = threadkit.CancelToken()
    started = [0] * count
    ended = [0] * count

    def make(i: int) -> Callable[[], None]:
        def callback() -> None:
            started[i] += 1
            for _ in range(pause * 50):  # a little work, so the threads overlap
                pass
            ended[i] += 1

        return callback

    registrations = [token.on_cancel(make(i)) for i in range(count)]
    chosen = sorted(i for i in to_remove if i < count)
    barrier = threading.Barrier(2)
    answers: dict[int, tuple[bool, int]] = {}

    def remover() -> None:
        barrier.wait(WAIT)
        for i in chosen:
            answer = registrations[i].remove()
            answers[i] = (answer, ended[i])  # what had ended when remove() returned

    thread = threading.Thread(target=remover)
    thread.start()
    barrier.wait(WAIT)
    token.cancel()
    thread.join(WAIT)
    assert not thread.is_alive()
    for i in range(count):
        if i in answers:
            removed, ended_then = answers[i]
            assert started[i] == int(not removed)
            if not removed:
                assert ended_then == 1  # remove() returned only after the callback ended
        else:
            assert started[i] == ended[i] == 1


def test_on_cancel_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match=r"^on_cancel\(\) needs a callable, got 'int'$"):
        threadkit.CancelToken().on_cancel(3)  # type: ignore[arg-type]


# -- children -----------------------------------------------------------------------


def test_a_child_is_cancelled_with_its_parent_and_gets_its_reason() -> None:
    parent = threadkit.CancelToken()
    child = parent.child()
    grandchild = threadkit.CancelToken(parent=child)
    parent.cancel("stop")
    assert child.cancelled
    assert grandchild.cancelled
    assert grandchild.reason == "stop"


def test_cancelling_a_child_leaves_its_parent_alone() -> None:
    parent = threadkit.CancelToken()
    child = parent.child()
    child.cancel()
    assert not parent.cancelled
    assert parent.child().cancelled is False


def test_a_child_of_a_cancelled_parent_is_born_cancelled() -> None:
    parent = threadkit.CancelToken()
    parent.cancel("gone")
    child = parent.child()
    assert child.cancelled
    assert child.reason == "gone"


def test_the_whole_subtree_is_cancelled_before_any_callback_runs() -> None:
    parent = threadkit.CancelToken()
    child = parent.child()
    seen: list[bool] = []
    parent.on_cancel(lambda: seen.append(child.cancelled))
    parent.cancel()
    assert seen == [True]


def test_a_parent_does_not_keep_its_children_alive() -> None:
    parent = threadkit.CancelToken()
    child = parent.child()
    ref = weakref.ref(child)
    del child
    gc.collect()
    assert ref() is None
    assert repr(parent) == "<CancelToken active, 0 callbacks, 0 children>"


def test_parent_must_be_a_token() -> None:
    with pytest.raises(TypeError, match=r"^parent must be a CancelToken or None, got 'int'$"):
        threadkit.CancelToken(parent=1)  # type: ignore[arg-type]


def test_waiters_on_a_child_wake_when_the_parent_is_cancelled() -> None:
    parent = threadkit.CancelToken()
    child = parent.child()
    waiting = threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        waiting.set()
        results.append(child.wait(WAIT))

    t = threading.Thread(target=waiter)
    t.start()
    assert waiting.wait(WAIT)
    parent.cancel()
    t.join(WAIT)
    assert results == [True]


# -- current_token ------------------------------------------------------------------


def test_outside_any_task_current_token_is_never_cancelled() -> None:
    token = threadkit.current_token()
    assert token is threadkit.current_token()
    assert isinstance(token, threadkit.CancelToken)
    assert not token.cancelled
    assert token.wait(0) is False
    token.raise_if_cancelled()
    assert token.on_cancel(lambda: None).remove() is True
    assert repr(token) == "<CancelToken never cancelled (no task runs in this thread)>"


def test_the_token_outside_any_task_cannot_be_cancelled() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"^cannot cancel the token current_token\(\) returns outside any task; "
        r"create a CancelToken\(\) to cancel$",
    ):
        threadkit.current_token().cancel()


def test_a_child_of_the_token_outside_any_task_can_be_cancelled_alone() -> None:
    child = threadkit.current_token().child()
    assert child.cancel() is True
    assert not threadkit.current_token().cancelled


def test_bind_token_sets_the_current_token_and_restores_the_previous() -> None:
    outer = threadkit.CancelToken()
    inner = threadkit.CancelToken()
    with _bind_token(outer):
        assert threadkit.current_token() is outer
        with _bind_token(inner):
            assert threadkit.current_token() is inner
        assert threadkit.current_token() is outer
    assert threadkit.current_token() is not outer
    assert not threadkit.current_token().cancelled


def test_the_bound_token_is_local_to_the_thread() -> None:
    token = threadkit.CancelToken()
    seen: list[threadkit.CancelToken] = []
    with _bind_token(token):
        t = threading.Thread(target=lambda: seen.append(threadkit.current_token()))
        t.start()
        t.join(WAIT)
    assert seen[0] is not token


def test_bind_token_rejects_a_non_token() -> None:
    with pytest.raises(TypeError, match=r"^token must be a CancelToken, got 'str'$"):  # noqa: SIM117
        with _bind_token("x"):  # type: ignore[arg-type]
            pass


# -- repr ---------------------------------------------------------------------------


def test_repr_shows_live_state() -> None:
    token = threadkit.CancelToken()
    token.on_cancel(lambda: None)
    child = token.child()
    assert repr(token) == "<CancelToken active, 1 callback, 1 child>"
    token.cancel("done")
    assert repr(token) == "<CancelToken cancelled, reason='done'>"
    assert repr(child) == "<CancelToken cancelled, reason='done'>"


# -- the token tree as a state machine ----------------------------------------------


class TokenTree(RuleBasedStateMachine):
    """Random trees of tokens, cancellations and callbacks against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[threadkit.CancelToken] = []
        self.parents: list[int | None] = []
        self.cancelled_directly: list[bool] = []
        # Per registration: token index, handle, times run, removed before running.
        self.registrations: list[tuple[int, threadkit.CancelRegistration, list[int], bool]] = []

    def model_cancelled(self, i: int | None) -> bool:
        while i is not None:
            if self.cancelled_directly[i]:
                return True
            i = self.parents[i]
        return False

    @rule(parent=st.integers(min_value=0, max_value=50) | st.none())
    def new_token(self, parent: int | None) -> None:
        if parent is not None and self.tokens:
            parent %= len(self.tokens)
            self.tokens.append(self.tokens[parent].child())
        else:
            parent = None
            self.tokens.append(threadkit.CancelToken())
        self.parents.append(parent)
        self.cancelled_directly.append(False)

    @precondition(lambda self: self.tokens)
    @rule(i=st.integers(min_value=0, max_value=50))
    def cancel(self, i: int) -> None:
        i %= len(self.tokens)
        was = self.model_cancelled(i)
        assert self.tokens[i].cancel(f"r{i}") is (not was)
        self.cancelled_directly[i] = True

    @precondition(lambda self: self.tokens)
    @rule(i=st.integers(min_value=0, max_value=50))
    def register(self, i: int) -> None:
        i %= len(self.tokens)
        runs = [0]

        def callback() -> None:
            runs[0] += 1

        handle = self.tokens[i].on_cancel(callback)
        self.registrations.append((i, handle, runs, False))

    @precondition(lambda self: self.registrations)
    @rule(j=st.integers(min_value=0, max_value=50))
    def remove(self, j: int) -> None:
        j %= len(self.registrations)
        i, handle, runs, removed = self.registrations[j]
        expected = not removed and runs[0] == 0
        assert handle.remove() is expected
        self.registrations[j] = (i, handle, runs, removed or expected)

    @invariant()
    def tokens_agree_with_the_model(self) -> None:
        for i, token in enumerate(self.tokens):
            assert token.cancelled is self.model_cancelled(i)

    @invariant()
    def each_callback_ran_once_iff_its_token_was_cancelled_before_removal(self) -> None:
        for i, _handle, runs, removed in self.registrations:
            assert runs[0] == (0 if removed else int(self.model_cancelled(i)))


TestTokenTree = TokenTree.TestCase
TestTokenTree.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
