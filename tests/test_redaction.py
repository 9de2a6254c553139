"""Secrets are redacted in every form redis-py sends them in: a command named in one string
(which redis-py splits on whitespace), an argument that holds several words (which the
server reads as one, and quotes in its errors), any letter case, bytes, pipelines and
transactions, and in the error texts and the slow log. On a real server and a Cluster, and
against redis-py's own packing of commands."""

from __future__ import annotations

import hashlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import PythonRespSerializer

from flask_redis import Redis
from flask_redis._display import REDACTED, displayed
from flask_redis._redaction import secret_positions, sent_words

from .conftest import SECRET, close_clients, observed_app
from .recorded import (
    SECRET_FORMS,
    AppFactory,
    no_secret_in,
    recorded,
    run,
    send,
)
from .servers import ClusterNodes

if TYPE_CHECKING:  # prometheus-client is needed by the tests of metrics only
    from prometheus_client import CollectorRegistry

#: Forms that issue #20 found recorded with the secret. The server does not split an
#: argument (redis-py splits a command's name only): it reads a subcommand, a parameter, a
#: user name or an ACL rule that holds several words as one, and quotes it in its errors;
#: MIGRATE without its database and timeout has its AUTH where they go. Each fails on the
#: server, after sending the secret.
JOINED_FORMS: dict[str, tuple[Any, ...]] = {
    "config-set-in-the-subcommand": ("CONFIG", f"SET masterauth {SECRET}"),
    "config-set-in-the-subcommand-bytes": (b"config", f"set\tMasterAuth {SECRET}\n".encode()),
    "acl-setuser-in-the-subcommand": ("ACL", f"SETUSER bob on >{SECRET}"),
    "sentinel-set-in-the-subcommand": ("SENTINEL", f"SET mymaster auth-pass {SECRET}"),
    "config-set-parameter-and-value": ("CONFIG", "SET", f"masterauth {SECRET}"),
    "config-set-parameter-and-value-tab": (
        "config set", "maxmemory", "1mb", f"requirepass\t{SECRET}",
    ),
    "sentinel-set-without-master": ("SENTINEL", "SET", "auth-pass", SECRET),
    "acl-setuser-rule-with-password": ("ACL", "SETUSER", "bob", f"~* +@all >{SECRET}"),
    "acl-setuser-rule-with-password-bytes": (b"acl setuser", b"bob", f"+@ALL\t>{SECRET}".encode()),
    "acl-setuser-user-and-rules": ("ACL", "SETUSER", f" bob on >{SECRET}"),
    "acl-dryrun-in-the-command": ("ACL", "DRYRUN", "default", f"AUTH {SECRET}"),
    "migrate-without-db-and-timeout": ("MIGRATE", "127.0.0.1", 1, "no-such-key", "AUTH", SECRET),
    "migrate-auth2-without-db-and-timeout": (
        b"migrate", b"127.0.0.1", b"1", b"", b"Auth2", b"default", SECRET.encode(),
    ),
    "hello-user-and-password": ("HELLO", "3", "AUTH", f"default {SECRET}"),
}  # fmt: skip
FORMS = {**SECRET_FORMS, **JOINED_FORMS}

WAYS = ["single", "pipeline", "pipeline-no-raise", "transaction"]
#: Forms sent on their own only: redis-py reads no reply of a HELLO the server accepts in
#: a pipeline (plain redis-py too: it waits for its timeout).
ALONE = {"hello-one-string"}
FORMS_AND_WAYS = [
    pytest.param(form, way, id=f"{form}-{way}")
    for form in FORMS
    for way in WAYS
    if way == "single" or form not in ALONE
]


# --- As redis-py sends it ------------------------------------------------------------------


def packed_words(command: tuple[Any, ...]) -> list[bytes]:
    """The words of ``command`` as redis-py's own packer puts them on the wire."""
    encoder = redis.connection.Encoder(  # type: ignore[attr-defined,no-untyped-call]
        "utf-8", "strict", False
    )
    packer = PythonRespSerializer(6000, encoder.encode)
    chunks = packer.pack(*command)  # type: ignore[no-untyped-call]
    data = b"".join(bytes(chunk) for chunk in chunks)
    header, _, rest = data.partition(b"\r\n")
    words = []
    for _ in range(int(header[1:])):
        length, _, rest = rest.partition(b"\r\n")
        size = int(length[1:])
        words.append(rest[:size])
        rest = rest[size + 2 :]
    assert rest == b""
    return words


def encoded(word: Any) -> bytes:
    if isinstance(word, str):
        return word.encode()
    if isinstance(word, (bytes, bytearray, memoryview)):
        return bytes(word)
    return repr(word).encode()


WHITESPACE = " \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000"
names = st.one_of(
    st.text(alphabet=st.sampled_from("aAzZ:-" + WHITESPACE), max_size=12),
    st.binary(max_size=12).map(lambda data: data.replace(b"\x00", b" ")),
    st.sampled_from(["CONFIG SET masterauth pw", " GET k", "\tauth pw", "", b"acl setuser"]),
)


@settings(database=None)
@given(name=names, rest=st.lists(st.sampled_from(["k", b"v", 7, 1.5, ""]), max_size=3))
def test_sent_words_are_the_words_redis_py_packs(name: str | bytes, rest: list[Any]) -> None:
    command = (name, *rest)
    assert [encoded(word) for word in sent_words(command)] == packed_words(command)


@pytest.mark.parametrize("form", list(FORMS), ids=list(FORMS))
def test_each_secret_form_is_found_in_the_words_redis_py_sends(form: str) -> None:
    command = FORMS[form]
    words = packed_words(command)
    hidden = secret_positions(command)
    assert any(SECRET.encode() in word for word in words)
    assert {index for index, word in enumerate(words) if SECRET.encode() in word} <= hidden


def random_case(draw: Callable[..., Any], word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(char.swapcase() if flip else char for char, flip in zip(word, flips))


#: Commands that carry the secret ``$`` (the password of ACL rules after their sign).
TEMPLATES = [
    ["AUTH", "$"],
    ["AUTH", "default", "$"],
    ["HELLO", "AUTH", "default", "$"],
    ["HELLO", "3", "AUTH", "default", "$"],
    ["HELLO", "3", "SETNAME", "auth", "AUTH", "default", "$", "SETNAME", "me"],
    ["HELLO", "AUTH", "$"],
    ["HELLO", "x", "AUTH", "default", "$"],
    ["MIGRATE", "h", "1", "k", "0", "100", "AUTH", "$"],
    ["MIGRATE", "h", "1", "k", "0", "100", "COPY", "REPLACE", "AUTH2", "u", "$", "KEYS", "a"],
    ["MIGRATE", "h", "1", "k", "0", "AUTH", "$"],
    ["MIGRATE", "h", "1", "k", "0", "100", "AUTH2", "$"],
    ["MIGRATE", "h", "1", "k", "AUTH", "$"],
    ["MIGRATE", "h", "1", "", "AUTH2", "u", "$"],
    ["MIGRATE", "h", "1", "k", "0", "100", "KEYS", "a", "AUTH", "$"],
    ["ACL", "SETUSER", "alice", "on", ">$", "~*", "+@all"],
    ["ACL", "SETUSER", "alice", "<$"],
    ["ACL", "SETUSER", "alice", "#$"],
    ["ACL", "SETUSER", "alice", "!$"],
    ["ACL", "SETUSER", "alice", "$"],
    ["ACL", "SETUSER", "alice", "(~key >$)"],
    ["ACL", "SETUSER", "alice", "~*>$"],
    ["ACL", "SETUSER", "alice", "%R~*", "&*", "+@all", "-@dangerous", ">$"],
    ["ACL", "DRYRUN", "alice", "AUTH", "$"],
    ["ACL", "DRYRUN", "alice", "CONFIG", "SET", "masterauth", "$"],
    ["ACL", "SETUSR", "alice", ">$"],
    ["COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "100", "AUTH", "$"],
    ["CONFIG", "SET", "requirepass", "$"],
    ["CONFIG", "SET", "maxmemory", "1mb", "masterauth", "$"],
    ["CONFIG", "SET", "masteruser", "$"],
    ["CONFIG", "SET", "tls-key-file-pass", "$"],
    ["CONFIG", "SET", "tls-client-key-file-pass", "$"],
    ["CONFIG", "SET", "maxmemory", "requirepass", "$"],
    ["CONFIG", "SETT", "requirepass", "$"],
    ["SENTINEL", "SET", "mymaster", "auth-pass", "$"],
    ["SENTINEL", "SET", "mymaster", "quorum", "2", "auth-pass", "$"],
    ["SENTINEL", "CONFIG", "SET", "sentinel-pass", "$"],
    ["SENTINEL", "SET", "auth-pass", "$"],
    "SENTINEL SET m rename-command a b auth-pass $ rename-command c d".split(),
]

#: What parts words: redis-py splits a command's name at ASCII whitespace, the server no
#: word; a sender may part them with any space or control character.
SEPARATORS = " \t\n\r\x0b\x0c\x00\x1c\x85\xa0\u2028\u3000"


@st.composite
def secret_commands(draw: Callable[..., Any]) -> tuple[tuple[Any, ...], str]:
    """A command of :data:`TEMPLATES` as an app might send it, and its secret: any letter
    case, its first words in one string, any words after them in one argument, any of them
    with :data:`SEPARATORS` around, any word as bytes."""
    secret = "Zq" + draw(st.text(alphabet="abcXYZ0123456789-_.~*()<>#!", min_size=8))
    template = draw(st.sampled_from(TEMPLATES))
    words = [word.replace("$", secret) if "$" in word else random_case(draw, word)
             for word in template]  # fmt: skip
    joined = draw(st.integers(1, len(words)))
    spaces = st.text(alphabet=SEPARATORS, min_size=1, max_size=3)
    pad = st.one_of(st.just(""), spaces)
    name = words[0]
    for word in words[1:joined]:
        name += draw(spaces) + word
    # Only what redis-py strips before a name: else the server reads a command it does not
    # know, as it would "AUTHX".
    command = [draw(st.sampled_from(["", " ", "\t\n"])) + name]
    for index, word in enumerate(words[joined:]):
        if index and draw(st.booleans()):  # one argument with the word before
            command[-1] += draw(spaces) + word
        else:
            command.append(word)
    command[1:] = [draw(pad) + word + draw(pad) for word in command[1:]]
    command = [word.encode() if draw(st.booleans()) else word for word in command]
    return tuple(command), secret


@settings(database=None, max_examples=300)
@given(secret_commands())
def test_a_secret_is_redacted_in_any_form(case: tuple[tuple[Any, ...], str]) -> None:
    command, secret = case
    name, args, _left_out, redacted, exact = displayed(command, (), 50)
    shown = " ".join([name, *map(str, args)])
    assert secret not in shown and secret.upper() not in shown
    assert REDACTED in shown  # among the arguments, or the name when the server reads
    assert redacted and not exact  # it as one word (b"AUTH\rpw" is not split)


@pytest.mark.parametrize(
    ("command", "recorded_as"),
    [
        (("GET k",), ("GET", ("k",))),
        (("config get  maxmemory",), ("CONFIG GET", ("maxmemory",))),
        (("CLIENT SETNAME", "me"), ("CLIENT SETNAME", ("me",))),
        (("CONFIG", "GET", "maxmemory"), ("CONFIG", ("GET", "maxmemory"))),
        (("", "GET", "k"), ("GET", ("k",))),
        ((b"DEBUG OBJECT k",), ("DEBUG OBJECT", ("k",))),
        (("set k 'two words'",), ("SET", ("k", "'two", "words'"))),
    ],
    ids=["get", "config-get", "named-subcommand", "words", "empty-name", "bytes", "quotes"],
)
def test_a_command_named_in_one_string_is_recorded_as_redis_py_sends_it(
    command: tuple[Any, ...], recorded_as: tuple[str, tuple[str, ...]]
) -> None:
    assert displayed(command, (), 50)[:2] == recorded_as


# --- On a real server -------------------------------------------------------------------


@pytest.mark.parametrize(("form", "way"), FORMS_AND_WAYS)
def test_a_secret_in_any_form_is_recorded_nowhere(
    recording_app: Flask,
    restored: None,
    caplog: pytest.LogCaptureFixture,
    form: str,
    way: str,
) -> None:
    recording_app.config.update(REDIS_SLOW_LOG_THRESHOLD=0, REDIS_SERVER_TIMING=True)
    ext = Redis(recording_app)
    command = FORMS[form]

    with caplog.at_level(logging.WARNING, "flask_redis.slow"):
        calls, response = run(recording_app, lambda: send(ext, command, way))

    secret_calls = [call for call in calls if call.command not in ("GET",)]
    assert len(secret_calls) == 1, calls
    (call,) = secret_calls
    assert call.redacted and REDACTED in call.args and not call.exact
    # The error holds no message: the server's and redis-py's may quote the command.
    assert call.error in (None, "ResponseError")
    assert no_secret_in(repr(calls)), calls
    assert no_secret_in(caplog.text)
    assert no_secret_in(str(response.headers))


def test_the_servers_echo_of_a_secret_in_an_error_is_not_recorded(
    recording_app: Flask, client_module: ModuleType, restored: None
) -> None:
    ext = Redis(recording_app)

    def work() -> None:
        # The server knows no SENTINEL: its error quotes the arguments, password included.
        with pytest.raises(client_module.ResponseError, match=SECRET):
            ext.execute_command(f"SENTINEL SET mymaster auth-pass {SECRET}")
        # Nor can it remove a password the user does not have: its error quotes the rule.
        ext.acl_setuser("alice")
        with pytest.raises(client_module.ResponseError, match=SECRET):
            ext.execute_command("acl setuser", "alice", f"<{SECRET}")

    calls = recorded(recording_app, work)
    assert [(call.command, call.error) for call in calls] == [
        ("SENTINEL SET", "ResponseError"),
        ("ACL SETUSER", None),
        ("ACL SETUSER", "ResponseError"),
    ]
    assert no_secret_in(repr(calls))


def test_a_pipeline_that_raises_quoting_a_command_in_one_string_keeps_no_secret(
    recording_app: Flask, client_module: ModuleType, restored: None
) -> None:
    ext = Redis(recording_app)

    def work() -> None:
        pipe = ext.pipeline(transaction=False)
        pipe.get("other")
        # The server rejects the rule after the password; redis-py's message quotes the
        # whole command, in its original case.
        pipe.execute_command(f"acl setuser alice >{SECRET} no-such-rule")
        with pytest.raises(client_module.ResponseError, match=SECRET):
            pipe.execute()

    calls = recorded(recording_app, work)
    assert [(call.command, call.redacted, call.error) for call in calls] == [
        ("GET", False, "ResponseError"),
        ("ACL SETUSER", True, "ResponseError"),
    ]
    assert calls[1].args == ("alice", REDACTED, REDACTED)
    assert no_secret_in(repr(calls))


def test_acl_setuser_shows_the_rules_that_hold_no_password() -> None:
    hashed = hashlib.sha256(SECRET.encode()).hexdigest()
    rules = ("on", "nopass", "resetpass", "~cache:*", "%R~read:*", "&news", "+get",
             "-@dangerous", "(~other:* +set)", "(~a:*", "+get)", "allkeys")  # fmt: skip
    secrets = (f"#{hashed}", f"(~b:* >{SECRET})", f'("\\x3e{SECRET}")', "reset-pass")

    name, args, _left_out, redacted, _exact = displayed(
        ("ACL SETUSER alice", *rules, *secrets), (), 50
    )

    assert (name, redacted) == ("ACL SETUSER", True)
    assert args == ("alice", *rules, *[REDACTED] * len(secrets))


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("CONFIG", "GET maxmemory\tpw"), (REDACTED,)),
        (("CONFIG", "SET", "maxmemory", "1mb", "maxmemory ", "2mb"),
         ("SET", "maxmemory", "1mb", REDACTED, REDACTED)),
        (("SENTINEL", "CONFIG", "GET\x00", "x"), ("CONFIG", REDACTED, REDACTED)),
        (("ACL", "DRYRUN", "alice", "GET\u3000k"), ("DRYRUN", "alice", REDACTED)),
        ((b"COMMAND", b"GETKEYS", "AUTH\xa0pw".encode()), ("GETKEYS", REDACTED)),
        (("ACL", "SETUSER", "alice", "~*>pw", "+@all"), ("SETUSER", "alice", REDACTED, "+@all")),
    ],
    ids=["subcommand", "parameter", "sentinel-config-action", "nested-command", "nested-bytes",
         "acl-rule"],
)  # fmt: skip
def test_a_word_in_the_place_of_a_name_that_is_not_one_is_redacted(
    command: tuple[Any, ...], shown: tuple[str, ...]
) -> None:
    # The server quotes a subcommand or a parameter it does not know in its error.
    assert displayed(command, (), 50)[1] == shown


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "SET", "save", "3600 1 300 100"),
        ("CONFIG SET", "client-output-buffer-limit", "normal 0 0 0", "maxmemory", "1mb"),
        ("CONFIG", "GET", "max* notify*"),
        ("ACL", "SETUSER", "alice", "(~a:* +get)", "-config|set", "&news:*", "%R~read:*"),
        ("MIGRATE", "h", 1, "auth", 0, 100, "COPY", "KEYS", "a", "b"),
        ("SENTINEL", "SET", "mymaster", "rename-command", "CONFIG", "MYCONFIG", "quorum", 2),
    ],
    ids=["config-save", "config-buffer-limit", "config-get", "acl-rules", "migrate", "sentinel"],
)
def test_words_that_hold_no_secret_are_shown(command: tuple[Any, ...]) -> None:
    # Though some hold spaces, a key is spelled "auth", an option takes two values.
    _name, args, _left_out, redacted, exact = displayed(command, (), 50)
    assert not redacted and REDACTED not in args and exact


def test_no_joined_form_of_a_secret_reaches_the_panel_or_its_copy_line(
    make_app: AppFactory, restored: None
) -> None:
    toolbar = make_app()

    def view() -> None:
        for command in JOINED_FORMS.values():
            send(toolbar.db, command, "single")

    page = toolbar.page(view)

    assert no_secret_in(page.text)
    assert len(page.rows) == len(JOINED_FORMS)
    for row in page.rows:
        assert row.copy_line is None
        assert row.button["title"] == "Not copyable: a secret is redacted (***)"


def test_a_cluster_clients_message_that_quotes_a_secret_is_not_recorded(
    redis_cluster_nodes: ClusterNodes,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = observed_app(redis_cluster_nodes.url, registry, REDIS_SLOW_LOG_THRESHOLD=0)
    ext = Redis(app)
    messages: list[str] = []

    def work() -> None:
        for command in JOINED_FORMS.values():
            # redis-py's cluster client cannot route "CONFIG" with a subcommand it does not
            # know: its message quotes the command ("Command: CONFIG SET masterauth ...").
            try:
                ext.execute_command(*command)
            except Exception as error:  # the RedisClusterException is no RedisError
                messages.append(str(error))

    try:
        with caplog.at_level(logging.WARNING, "flask_redis.slow"):
            calls = recorded(app, work)
    finally:
        close_clients(app)
    assert not all(no_secret_in(message) for message in messages)
    assert len(calls) == len(JOINED_FORMS)
    assert all(call.redacted and REDACTED in call.args for call in calls), calls
    assert no_secret_in(repr(calls)), calls
    assert no_secret_in(caplog.text)
