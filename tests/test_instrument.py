"""The instrumented client: what each round trip hands to its observer (real server)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest
import redis

import flask_redis._instrument
from flask_redis import _nodes as nodes
from flask_redis._commands import Command
from flask_redis._instrument import combine, instrumented, observe
from flask_redis._libraries import ClientLibrary, client_library

from .recorded import FailingObserver, log_failures_anew
from .servers import RedisServer


class Recorder:
    """An observer that keeps every round trip it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Command, float, Any, BaseException | None, Any]] = []

    def __call__(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        self.calls.append((command, seconds, reply, error, commands))

    @property
    def commands(self) -> list[Command]:
        return [call[0] for call in self.calls]


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def client(
    redis_server: RedisServer, plain: redis.Redis, recorder: Recorder, library: ClientLibrary
) -> Iterator[Any]:
    """An instrumented client of the backend's library (:func:`library`), observed by
    ``recorder``."""
    client = instrumented(library.client)(host="127.0.0.1", port=redis_server.port)
    observe(client, recorder)
    yield client
    client.close()


def test_each_command_is_one_observation_with_its_reply(client: Any, recorder: Recorder) -> None:
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert recorder.commands == [("SET", "k", "v"), ("GET", "k")]
    assert [call[2] for call in recorder.calls] == [True, b"v"]
    assert all(0 < call[1] < 5 and call[3] is None for call in recorder.calls)


def test_the_caller_gets_the_very_error_the_observer_saw(
    client: Any, recorder: Recorder, client_module: ModuleType
) -> None:
    client.set("k", "v")
    with pytest.raises(client_module.ResponseError) as raised:
        client.hget("k", "field")
    command, _seconds, reply, error, _commands = recorder.calls[-1]
    assert (command, reply) == (("HGET", "k", "field"), None)
    assert error is raised.value


@pytest.mark.parametrize("name", ["redis", "valkey"])
def test_a_subclass_that_notes_servers_keeps_the_configured_class(name: str) -> None:
    # A recorded Sentinel client mixes into the instrumented class: its commands go to the
    # configured class's execute_command (redis-py's fast path, valkey-py's own), not back
    # to the instrumented one's, which would call itself.
    pytest.importorskip(name)
    base = client_library(name).client
    cls = nodes.noting(instrumented(base), nodes.SentinelNodes)
    assert cls._flask_redis_base is base
    assert issubclass(cls, instrumented(base))


@pytest.mark.parametrize(("name", "class_name"), [("redis", "Redis"), ("valkey", "Valkey")])
def test_the_subclass_is_made_once_per_base_class_and_keeps_its_name(
    name: str, class_name: str
) -> None:
    pytest.importorskip(name)
    base = client_library(name).client
    cls = instrumented(base)
    assert instrumented(base) is cls
    assert issubclass(cls, base) and cls is not base
    assert (cls.__name__, cls.__module__) == (class_name, base.__module__)


def test_a_pipeline_is_one_round_trip_with_its_commands(
    client: Any, recorder: Recorder, client_module: ModuleType
) -> None:
    with client.pipeline(transaction=False) as pipe:
        assert isinstance(pipe, client_module.client.Pipeline)
        pipe.set("a", 1).incr("a")
        assert pipe.execute() == [True, 2]
    assert recorder.calls[0][0] == ("PIPELINE",)
    assert recorder.calls[0][2] == [True, 2]
    assert list(recorder.calls[0][4]) == [("SET", "a", 1), ("INCRBY", "a", 1)]
    assert len(recorder.calls) == 1


def test_a_transaction_with_watch_observes_watch_then_multi(
    client: Any, recorder: Recorder
) -> None:
    def add_one(pipe: Any) -> None:
        value = int(pipe.get("n") or 0)
        pipe.multi()
        pipe.set("n", value + 1)

    assert client.transaction(add_one, "n") == [True]
    assert [call[0][0] for call in recorder.calls] == ["WATCH", "GET", "MULTI"]
    assert list(recorder.calls[-1][4]) == [("SET", "n", 1)]


def test_a_watch_conflict_reaches_the_caller_as_watch_error(
    client: Any, recorder: Recorder, plain: redis.Redis, client_module: ModuleType
) -> None:
    with client.pipeline() as pipe:
        pipe.watch("n")
        plain.set("n", "changed")  # another client changes the watched key
        pipe.multi()
        pipe.set("n", "mine")
        with pytest.raises(client_module.WatchError) as raised:
            pipe.execute()
    assert recorder.calls[-1][0] == ("MULTI",)
    assert recorder.calls[-1][3] is raised.value
    assert plain.get("n") == b"changed"


def test_an_empty_pipeline_makes_no_observation(client: Any, recorder: Recorder) -> None:
    assert client.pipeline().execute() == []
    assert recorder.calls == []


def test_clients_made_by_client_share_the_observer(client: Any, recorder: Recorder) -> None:
    with client.client() as single:
        single.ping()
    assert recorder.commands == [("PING",)]


def test_a_client_made_by_the_class_itself_is_not_observed(
    client: Any, redis_server: RedisServer, recorder: Recorder
) -> None:
    other = type(client).from_url(redis_server.url)  # the class of an observed client
    assert other.ping() is True
    other.close()
    assert recorder.calls == []
    assert client.echo("observed") == b"observed"
    assert recorder.commands == [("ECHO", "observed")]


def test_locks_and_scripts_go_through_the_observer(client: Any, recorder: Recorder) -> None:
    with client.lock("resource", timeout=5):
        pass
    names = {call[0][0] for call in recorder.calls}
    assert "SET" in names and names & {"EVALSHA", "EVAL"}


def test_pubsub_listening_is_not_timed(client: Any, recorder: Recorder) -> None:
    pubsub = client.pubsub()
    pubsub.subscribe("channel")
    assert client.publish("channel", "hello") == 1
    messages = [pubsub.get_message(timeout=0.2) for _ in range(3)]
    pubsub.close()
    assert any(m and m["type"] == "message" for m in messages)
    assert recorder.commands == [("PUBLISH", "channel", "hello")]


@pytest.mark.parametrize("protocol", [2, 3])
def test_decoded_replies_reach_the_observer_in_both_protocols(
    redis_server: RedisServer,
    plain: redis.Redis,
    recorder: Recorder,
    protocol: int,
    library: ClientLibrary,
) -> None:
    client = instrumented(library.client)(
        port=redis_server.port, decode_responses=True, protocol=protocol
    )
    observe(client, recorder)
    client.hset("h", mapping={"a": "1"})
    assert client.hgetall("h") == {"a": "1"}
    assert recorder.calls[-1][2] == {"a": "1"}
    client.close()


def test_a_custom_subclass_keeps_its_own_behaviour(
    redis_server: RedisServer, plain: redis.Redis, recorder: Recorder, library: ClientLibrary
) -> None:
    base: Any = library.client

    class Prefixed(base):  # type: ignore[misc]
        def get(self, name: str) -> Any:
            return super().get(f"app:{name}")

    client = instrumented(Prefixed)(port=redis_server.port)
    observe(client, recorder)
    plain.set("app:k", "v")
    assert client.get("k") == b"v"
    assert isinstance(client, Prefixed)
    assert recorder.commands == [("GET", "app:k")]
    client.close()


def test_an_execute_command_of_the_configured_class_runs_inside_the_timing(
    redis_server: RedisServer, recorder: Recorder, library: ClientLibrary
) -> None:
    base: Any = library.client

    class Tagged(base):  # type: ignore[misc]
        def execute_command(self, *args: Any, **options: Any) -> Any:
            return ("tagged", super().execute_command(*args, **options))

    client = instrumented(Tagged)(port=redis_server.port)
    observe(client, recorder)
    assert client.execute_command("PING") == ("tagged", True)
    assert recorder.calls[-1][:1] + recorder.calls[-1][2:4] == (("PING",), ("tagged", True), None)
    client.close()


def test_a_patch_of_the_library_made_after_the_class_runs_as_a_tracer_would_have_it(
    client: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, library: ClientLibrary
) -> None:
    """A tracer patches the library's ``execute_command``: redis-py's, whose own only hands
    the command on (which the instrumented client then skips), or valkey-py's."""
    traced: list[Any] = []
    original = library.client.execute_command

    def traced_execute_command(self: Any, *args: Any, **options: Any) -> Any:
        traced.append(args)
        return original(self, *args, **options)

    assert client.get("k") is None  # the class is made, and used, before the patch
    monkeypatch.setattr(library.client, "execute_command", traced_execute_command)
    assert client.set("k", "v") is True
    assert traced == [("SET", "k", "v")]
    assert recorder.commands == [("GET", "k"), ("SET", "k", "v")]


def test_a_failing_observer_leaves_the_others_their_round_trip(
    client: Any,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_failures_anew(monkeypatch)

    after = Recorder()
    observe(client, combine(recorder, FailingObserver(), after))
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert recorder.commands == after.commands == [("SET", "k", "v"), ("GET", "k")]
    assert "observer bug" in caplog.text


@pytest.mark.parametrize("args", [("SET", "k", "v"), ("NOSUCHCMD", "k")], ids=["ok", "error"])
def test_a_command_observes_and_reports_as_a_watched_pipeline_does(
    client: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    """A client's ``execute_command`` inlines what a pipeline's round trips call, once
    watching: both hand the round trip to the observer and log its failure alike."""

    def outcome(through_pipeline: bool) -> tuple[Any, ...]:
        log_failures_anew(monkeypatch)
        caplog.clear()
        observer = FailingObserver()
        observe(client, observer)
        with caplog.at_level(logging.ERROR, "flask_redis"):
            try:
                if through_pipeline:
                    with client.pipeline() as pipe:
                        pipe.watch("w")
                        pipe.execute_command(*args)
                        reply = pipe.execute_command(*args)  # the second is not logged
                else:
                    client.execute_command(*args)
                    reply = client.execute_command(*args)
            except Exception as error:  # the error reaches the caller as it is
                reply = type(error)
        command, observed, raised, commands, timed = observer.seen[-1]
        seen = (command, observed, type(raised), commands, timed)
        logged = [(record.getMessage(), record.exc_info) for record in caplog.records]
        return reply, seen, [(message, info and info[0]) for message, info in logged]

    assert outcome(through_pipeline=False) == outcome(through_pipeline=True)
    reply, _seen, logged = outcome(through_pipeline=False)
    assert reply is True or issubclass(reply, Exception)
    assert logged == [
        (
            "flask_redis: the observer FailingObserver failed; the Redis command it observed"
            " did not",
            RuntimeError,
        )
    ]


def test_the_observer_type_is_the_command_type() -> None:
    """The hot path spells out the type of a command, which it may not import."""
    annotation = flask_redis._instrument.Observer.__call__.__annotations__["command"]
    assert eval(annotation, vars(flask_redis._instrument)) == Command
