"""The :class:`RedisPanel` of Flask-DebugToolbar."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from flask import abort, after_this_request, current_app, jsonify, request, url_for

# Flask-DebugToolbar 0.15 has no types (0.16 has): this import and the subclass of
# DebugPanel need their ignores with 0.15 only.
from flask_debugtoolbar.panels import DebugPanel  # type: ignore[import-untyped,unused-ignore]
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from werkzeug import Request, Response

from flask_redis._commands import printable
from flask_redis._request_pages import ENDPOINT as PAGE_ENDPOINT
from flask_redis._request_pages import LIST_ENDPOINT

from ._analysis import Analysis, analyze
from ._history import History, KeptRequest, summary
from ._model import Snapshot
from ._view import make_groups

#: The key of an app's :class:`~._history.History` in ``app.extensions``.
HISTORY_KEY = "flask_redis_panel"
#: The response header that links a response to the page of its request's calls.
LINK_HEADER = "X-Debug-Redis-Link"

#: The panel's own templates, autoescaped: every recorded value is shown as text.
_templates = Environment(
    loader=PackageLoader("flask_redis_panel", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
#: Text with its control characters (and any other not printable) written as escapes.
_templates.filters["printable"] = printable


def _breakable(text: str) -> Markup:
    """``text``, escaped, with a line break allowed after each ``/``: a path breaks there."""
    return Markup("/<wbr>").join(Markup.escape(part) for part in text.split("/"))


_templates.filters["breakable"] = _breakable


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class RedisPanel(DebugPanel):  # type: ignore[misc,unused-ignore]
    """The Redis calls of the request: per prefix, then one row per call.

    Enable it by adding ``"flask_redis_panel.RedisPanel"`` to ``DEBUG_TB_PANELS``. It shows
    what :func:`flask_redis.get_recorded_calls` returns, taken when the toolbar processes
    the response.
    """

    name = "Redis"
    has_content = True

    _snapshot: Snapshot | None = None
    _analysis: Analysis | None = None
    #: This request, as kept for its page.
    _kept: KeptRequest | None = None

    def process_request(self, request: Request) -> None:
        """Called for each request the toolbar shows itself to (``DEBUG_TB_HOSTS``): keep
        its calls when its response leaves, whatever the response (HTML or not), and link
        the response to them, where the app records calls (see ``flask_redis``'s
        ``_request_pages``)."""
        endpoint = getattr(request, "endpoint", None) or ""  # Flask's request has one
        if PAGE_ENDPOINT in current_app.view_functions and not _is_static(endpoint):
            after_this_request(self._keep)

    @classmethod
    def request_page(cls, token: str) -> Response:
        """The page of the calls of the request of ``token``: 404 for a request no longer
        kept (see :mod:`._history`)."""
        kept = _history().get(token)
        if kept is None:
            abort(404)
        return Response(
            render_request(kept),
            mimetype="text/html",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    @classmethod
    def recent_requests(cls) -> Response:
        """The requests kept, newest first, as JSON: what the panel's list shows of each,
        and the link to its page."""
        found = [
            {**summary(kept), "link": url_for(PAGE_ENDPOINT, token=kept.token)}
            for kept in _history().newest()
        ]
        response = jsonify(requests=found)
        response.headers["Cache-Control"] = "no-store"
        return response

    def process_view(
        self, request: Request, view_func: Callable[..., Any], view_kwargs: dict[str, Any]
    ) -> Callable[..., Any] | None:
        """An ``async def`` view, made a function that runs it in an event loop, as Flask
        does (:meth:`~flask.Flask.ensure_sync`): Flask-DebugToolbar calls the view itself,
        and would get a coroutine, never awaited (its issue #158). Any other view is left
        as it is."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if inspect.iscoroutinefunction(view_func):
            return app.ensure_sync(view_func)  # type: ignore[no-any-return]
        if not inspect.iscoroutinefunction(inspect.unwrap(view_func)):
            return None
        # Wrapped by a panel before this one (the profiler's): what it returns is awaited.
        run = app.async_to_sync(_result)

        def view(**kwargs: Any) -> Any:
            result = view_func(**kwargs)
            return run(result) if inspect.isawaitable(result) else result

        return view

    def _keep(self, response: Response) -> Response:
        kept = _history().keep(
            request.method, request.path, response.status_code, self.snapshot, self.analysis
        )
        self._kept = kept
        response.headers[LINK_HEADER] = url_for(PAGE_ENDPOINT, token=kept.token, _external=True)
        return response

    def process_response(self, request: Request, response: Response) -> None:
        """Take the request's calls: the toolbar renders the panel after this. Where they
        were kept for the request's page, as the response left the view, the panel shows
        the same."""
        if self._kept is None:
            self._snapshot = Snapshot.take()
            self._analysis = None

    @property
    def snapshot(self) -> Snapshot:
        """The calls shown; taken now if :meth:`process_response` has not run."""
        if self._snapshot is None:
            self._snapshot = Snapshot.take()
        return self._snapshot

    @property
    def analysis(self) -> Analysis:
        """Totals, duplicates and N+1 hints of :attr:`snapshot`."""
        if self._analysis is None:
            snapshot = self.snapshot
            self._analysis = analyze(
                snapshot.calls, snapshot.dropped, snapshot.seconds, snapshot.modes
            )
        return self._analysis

    def nav_title(self) -> str:
        """``"Redis"``."""
        return "Redis"

    def nav_subtitle(self) -> str:
        """``"12 calls in 3.40 ms · 2 duplicates · 1 N+1 hint"``."""
        analysis = self.analysis
        parts = [f"{_plural(analysis.calls, 'call')} in {analysis.seconds * 1000:.2f} ms"]
        if analysis.duplicate_calls:
            parts.append(_plural(analysis.duplicate_calls, "duplicate"))
        if analysis.hints:
            parts.append(_plural(len(analysis.hints), "N+1 hint"))
        return " · ".join(parts)

    def title(self) -> str:
        """The heading of the open panel."""
        return "Redis calls"

    def url(self) -> str:
        """None: the panel opens in place."""
        return ""

    def content(self) -> str:
        """The panel's HTML: the request's calls, and the list of the recent requests."""
        recent = None
        if LIST_ENDPOINT in current_app.view_functions:
            recent = Recent(
                [summary(kept) for kept in _history().newest()],
                None if self._kept is None else self._kept.token,
                url_for(LIST_ENDPOINT),
                url_for(PAGE_ENDPOINT, token="TOKEN"),
            )
        return render(self.snapshot, self.analysis, recent)


async def _result(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _is_static(endpoint: str) -> bool:
    """Whether ``endpoint`` serves static files (the app's, a blueprint's, the toolbar's):
    their requests make no Redis calls, and would crowd the list of requests out."""
    return endpoint == "static" or endpoint.endswith(".static")


def _history() -> History:
    """The app's recent requests."""
    history: History = current_app.extensions.setdefault(HISTORY_KEY, History())
    return history


class Recent(NamedTuple):
    """The list of recent requests in the panel."""

    #: Each request, newest first (see :func:`~._history.summary`).
    requests: list[dict[str, Any]]
    #: The token of the request the panel is of.
    current: str | None
    #: Where the list is read again, as JSON.
    url: str
    #: The link of a request's page, ``TOKEN`` standing for its token.
    page: str


def render_request(kept: KeptRequest) -> str:
    """The page of the calls of ``kept``: the panel, under the request it is of."""
    template = _templates.get_template("redis_request.html")
    # The panel is rendered by the autoescaping environment: its HTML goes in as it is.
    content = Markup(render(kept.snapshot, kept.analysis))
    return template.render(kept=kept, analysis=kept.analysis, content=content)


def render(
    snapshot: Snapshot, analysis: Analysis | None = None, recent: Recent | None = None
) -> str:
    """The panel's HTML for ``snapshot``.

    :param analysis: Its analysis, if already made.
    :param recent: The recent requests to list, if any.
    """
    if analysis is None:
        analysis = analyze(snapshot.calls, snapshot.dropped, snapshot.seconds, snapshot.modes)
    template = _templates.get_template("redis_panel.html")
    return template.render(
        summaries=analysis.summaries,
        hints=analysis.hints,
        groups=make_groups(snapshot, analysis),
        recent=recent,
    )
