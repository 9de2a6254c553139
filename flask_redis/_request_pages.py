"""The route of the page of one request's recorded calls, which the Redis panel of
Flask-DebugToolbar draws: where the toolbar shows no panel, as for a JSON response, the
response links to it (the panel adds the header).

A route is added while the app is set up, and the panel is only named in
``DEBUG_TB_PANELS``, which may list it only later: so the route is the extension's, added
where calls are recorded, and it hands each request to the panel that the toolbar's
config names. It answers 404 where the toolbar would not show itself
(``DEBUG_TB_ENABLED``, ``DEBUG_TB_HOSTS``) or does not list the panel.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, current_app, request
from werkzeug.utils import import_string

#: The page's path.
PATH = "/_debug_toolbar/redis/<token>"
#: Its endpoint. Its blueprint part is the toolbar's, which the toolbar shows itself to
#: none of: no toolbar is added to the page.
ENDPOINT = "debugtoolbar.flask_redis_request"
#: The path and endpoint of the list of the recent requests, as JSON, newest first.
LIST_PATH = "/_debug_toolbar/redis/"
LIST_ENDPOINT = "debugtoolbar.flask_redis_requests"
#: The panel, as ``DEBUG_TB_PANELS`` names it.
PANEL = "flask_redis_panel.RedisPanel"


def add_page(app: Flask) -> None:
    """Add the routes of the page and of the list to ``app``, once."""
    if ENDPOINT not in app.view_functions:
        app.add_url_rule(PATH, ENDPOINT, _page)
        app.add_url_rule(LIST_PATH, LIST_ENDPOINT, _list)


def _page(token: str) -> Response:
    page: Response = _panel().request_page(token)
    return page


def _list() -> Response:
    found: Response = _panel().recent_requests()
    return found


def _panel() -> Any:
    """The panel class, where the toolbar would show it to this request; else 404."""
    config = current_app.config
    hosts = config.get("DEBUG_TB_HOSTS")
    if (
        not config.get("DEBUG_TB_ENABLED")
        or PANEL not in (config.get("DEBUG_TB_PANELS") or ())
        or (hosts and request.remote_addr not in hosts)
    ):
        abort(404)
    return import_string(PANEL)
