"""State kept per Flask request, in a context variable: the calls recording keeps.

A :class:`PerRequest` knows, per app, the members (config prefixes) that keep such state.
When a request of the app starts it makes the request's value; when the request ends it
hands the value to its ``end`` function. A request run inside another one (a test client
in a view) has a value of its own and gives the outer one back when it ends; a request
context pushed by hand, which starts no request, leaves the value alone.

A value is the current one only while its request context is pushed: where a teardown
function of the app raised before this one ran, the value of the ended request is not
used again, nor kept beyond the next request. A value holds neither its request context
nor the app: an app its code drops is collected, whatever its last request left behind.

The threads a request hands work to share its value while it lasts: those that run in a
copy of its context variables (:func:`contextvars.copy_context`) find it in them, and
those that run under a copy of its request context
(:func:`flask.copy_current_request_context`) find it in the WSGI environ of the request,
which the copy shares. Values shared so are written to by several threads at once.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import Any, Callable, Generic, TypeVar

from flask import Flask, current_app
from flask.globals import _cv_request  # the request context, if any: a context variable
from flask.signals import request_started


class Stacked:
    """Mixed into a per-request value: where :class:`PerRequest` keeps what it needs."""

    #: The value of the request this one runs inside of, if any.
    _outer: Any = None
    #: The context variable tokens of the request context the value is of: empty once the
    #: context is popped. The list is the context's own, which tells it apart; the context
    #: itself is not kept, nor its app: a value left current by a teardown function that
    #: raised must not keep an app alive.
    _tokens: Any = ()


M = TypeVar("M")
V = TypeVar("V", bound=Stacked)


class PerRequest(Generic[M, V]):
    """One value per request of the apps that have members.

    :param name: The context variable's name.
    :param make: Makes a request's value from the members of its app.
    :param end: Called with the members and the value when the request ends.
    """

    def __init__(
        self,
        name: str,
        make: Callable[[list[M]], V],
        end: Callable[[list[M], V], None] | None = None,
    ) -> None:
        #: The current request's value, ``None`` outside a request, or a value whose
        #: ``_tokens`` are empty, which :meth:`value` skips: read it on hot paths.
        self.current: ContextVar[V | None] = ContextVar(name, default=None)
        self._make = make
        self._end = end
        self._members: weakref.WeakKeyDictionary[Flask, list[M]] = weakref.WeakKeyDictionary()
        #: The key of the WSGI environ of a request that holds its value while it lasts:
        #: where a copy of its request context finds it.
        self._environ_key = f"flask_redis.{name}"

    def add(self, app: Flask, member: M) -> None:
        """Keep a value per request of ``app`` for ``member`` too."""
        members = self._members.get(app)
        if members is None:
            members = self._members[app] = []
            request_started.connect(self._start, app, weak=False)
            app.teardown_request(self._finish)
        members.append(member)

    def members(self, app: Flask) -> list[M]:
        """The members of ``app``, in the order they were added."""
        return self._members.get(app, [])

    def value(self) -> V | None:
        """The value of the current request, ``None`` outside a request."""
        value = self._stacked()
        if value is None:  # maybe under a copy of a request's context, in another thread
            context = _cv_request.get(None)
            if context is not None:
                value = self._copied(context.request.environ)
        return value

    def _stacked(self) -> V | None:
        """The value of the current request in the context variable, if any."""
        value = self.current.get()
        while value is not None and not value._tokens:  # ended, its teardown not run
            value = value._outer
        return value

    def _copied(self, environ: dict[str, Any]) -> V | None:
        """The value of the request of ``environ``, while the request context that started
        it is pushed."""
        value: V | None = environ.get(self._environ_key)
        return value if value is not None and value._tokens else None

    def _start(self, app: Flask, **extra: Any) -> None:
        value = self._make(self.members(app))
        # Not a copied request's value: the context variable is set back to it at the end.
        value._outer = self._stacked()
        context = _cv_request.get()
        value._tokens = context._cv_tokens
        self.current.set(value)
        context.request.environ[self._environ_key] = value

    def _finish(self, error: BaseException | None) -> None:
        value = self.value()
        context = _cv_request.get(None)
        if value is None or context is None or value._tokens is not context._cv_tokens:
            return  # not a request that started one
        self.current.set(value._outer)
        context.request.environ.pop(self._environ_key, None)  # its copies no longer find it
        if self._end is not None:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            self._end(self.members(app), value)
