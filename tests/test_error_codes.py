"""The ``code`` label of a failed command (``error_code``): the error prefix of the server's
reply, for errors the servers give for real, with redis-py and valkey-py; ``none`` for what
is no reply of the server; never an error of its own, whatever the exception holds."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_redis._labels import ERROR_CODES, error_code
from flask_redis._libraries import ClientLibrary

from .conftest import SECRET, Closing, ServerPool
from .servers import ClusterNodes, RedisServer, free_port, key_in_slot

LABELS = ERROR_CODES | {"OTHER", "none"}


def caught(call: Callable[[], object]) -> BaseException:
    """The exception ``call()`` raises."""
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("the call did not fail")


@pytest.fixture()
def client(library: ClientLibrary, redis_server: RedisServer, closing: Closing) -> Any:
    """A plain client of the test's library, of :func:`redis_server`, database 0 empty."""
    made = closing(library.client(host="127.0.0.1", port=redis_server.port))
    made.flushdb()
    return made


@pytest.fixture(scope="module")
def spare_server(server_kind: str, server_pool: ServerPool) -> RedisServer:
    """A server of its own, whose settings the tests change (and set back)."""
    return server_pool.get(
        "error-codes", server_kind, lambda folder: RedisServer(folder, kind=server_kind).start()
    )


@pytest.fixture()
def spare(library: ClientLibrary, spare_server: RedisServer, closing: Closing) -> Any:
    """A plain client of :func:`spare_server`, of the test's library."""
    return closing(library.client(host="127.0.0.1", port=spare_server.port))


def no_retry(client_module: ModuleType) -> Any:
    """A ``Retry`` that tries once: a refused connection fails at once."""
    importlib.import_module(f"{client_module.__name__}.backoff")
    importlib.import_module(f"{client_module.__name__}.retry")
    return client_module.retry.Retry(client_module.backoff.NoBackoff(), 0)


# -- Errors of the server, for real ----------------------------------------------------------


def test_a_command_on_a_key_of_another_type_is_wrongtype(client: Any) -> None:
    client.rpush("list", "a")
    assert error_code(caught(lambda: client.get("list"))) == "WRONGTYPE"


def test_an_unknown_command_and_wrong_arguments_are_err(client: Any) -> None:
    assert error_code(caught(lambda: client.execute_command("NO-SUCH-COMMAND"))) == "ERR"
    assert error_code(caught(lambda: client.execute_command("GET"))) == "ERR"


def test_an_err_whose_text_starts_with_an_upper_case_word_is_err(client: Any) -> None:
    """redis-py before 8 and valkey-py strip ``ERR`` from ``ERR EXEC without MULTI``."""
    assert error_code(caught(lambda: client.execute_command("EXEC"))) == "ERR"
    assert error_code(caught(lambda: client.execute_command("SELECT", 100000))) == "ERR"
    error = caught(lambda: client.execute_command("SET", "k", "v", "NX", "XX"))
    assert error_code(error) == "ERR"


def test_an_unknown_script_is_noscript(client: Any) -> None:
    assert error_code(caught(lambda: client.evalsha("0" * 40, 0))) == "NOSCRIPT"


def test_a_write_beyond_maxmemory_is_oom(spare: Any) -> None:
    spare.config_set("maxmemory-policy", "noeviction")
    spare.config_set("maxmemory", "1")
    try:
        assert error_code(caught(lambda: spare.set("k", "v"))) == "OOM"
    finally:
        spare.config_set("maxmemory", "0")


def test_a_command_while_a_script_runs_too_long_is_busy(
    spare: Any, library: ClientLibrary, spare_server: RedisServer, closing: Closing
) -> None:
    threshold = "busy-reply-threshold"
    if not spare.config_get(threshold):  # Redis 6.2
        threshold = "lua-time-limit"
    before = spare.config_get(threshold)[threshold]
    spare.config_set(threshold, "50")
    runner = closing(library.client(host="127.0.0.1", port=spare_server.port))
    outcome: list[BaseException] = []
    spinning = threading.Thread(
        target=lambda: outcome.append(caught(lambda: runner.eval("while true do end", 0)))
    )
    spinning.start()
    try:
        time.sleep(0.1)  # the script runs: PING waits for the threshold, then is refused
        assert error_code(caught(spare.ping)) == "BUSY"
    finally:
        deadline = time.monotonic() + 10
        while spinning.is_alive() and time.monotonic() < deadline:
            try:
                spare.script_kill()
            except Exception:  # NOTBUSY: the script has not started, or has ended
                time.sleep(0.05)
            spinning.join(0.2)
        spare.config_set(threshold, before)
    assert error_code(outcome[0]) == "ERR"  # the script's own call: killed


def test_a_write_to_a_replica_is_readonly(spare: Any) -> None:
    spare.execute_command("REPLICAOF", "127.0.0.1", free_port())  # no master answers
    try:
        assert error_code(caught(lambda: spare.set("k", "v"))) == "READONLY"
    finally:
        spare.execute_command("REPLICAOF", "NO", "ONE")


def test_a_command_without_the_password_is_noauth(
    library: ClientLibrary, secured_server: RedisServer, closing: Closing
) -> None:
    anonymous = closing(library.client(host="127.0.0.1", port=secured_server.port))
    assert error_code(caught(lambda: anonymous.get("k"))) == "NOAUTH"


def test_a_wrong_password_is_wrongpass(
    library: ClientLibrary, secured_server: RedisServer, closing: Closing
) -> None:
    wrong = closing(
        library.client(host="127.0.0.1", port=secured_server.port, password=SECRET + "x")
    )
    assert error_code(caught(lambda: wrong.get("k"))) == "WRONGPASS"


def test_a_command_the_user_may_not_run_is_noperm(
    client: Any, library: ClientLibrary, redis_server: RedisServer, closing: Closing
) -> None:
    name = "error-codes-user"
    client.execute_command("ACL", "SETUSER", name, "on", ">pw", "~*", "+@all", "-get")
    try:
        user = closing(
            library.client(host="127.0.0.1", port=redis_server.port, username=name, password="pw")
        )
        assert error_code(caught(lambda: user.get("k"))) == "NOPERM"
    finally:
        client.execute_command("ACL", "DELUSER", name)


def test_exec_of_a_transaction_with_a_bad_command_is_execabort(
    library: ClientLibrary, redis_server: RedisServer, closing: Closing
) -> None:
    one = closing(
        library.client(host="127.0.0.1", port=redis_server.port, single_connection_client=True)
    )
    one.execute_command("MULTI")
    assert error_code(caught(lambda: one.execute_command("NO-SUCH-COMMAND"))) == "ERR"
    assert error_code(caught(lambda: one.execute_command("EXEC"))) == "EXECABORT"


def test_a_pipeline_s_error_is_labelled_by_the_reply_of_its_command(client: Any) -> None:
    """The libraries raise the first failed command's error, its message prefixed with the
    command's words, which may hold anything."""
    client.rpush("list", "a")
    pipe = client.pipeline(transaction=False)
    pipe.set("ERR x of pipeline caused error: MOVED", "v").get("list")
    assert error_code(caught(pipe.execute)) == "WRONGTYPE"
    transaction = client.pipeline()
    transaction.execute_command("NO-SUCH-COMMAND", "WRONGTYPE").set("k", "v")
    assert error_code(caught(transaction.execute)) == "ERR"


def test_a_restore_onto_a_key_is_busykey(client: Any) -> None:
    client.set("k", "v")
    dumped = client.dump("k")
    assert error_code(caught(lambda: client.restore("k", 0, dumped))) == "BUSYKEY"


def test_stream_group_errors_are_nogroup_and_busygroup(client: Any) -> None:
    read = caught(lambda: client.xreadgroup("no-group", "c", {"stream": ">"}))
    assert error_code(read) == "NOGROUP"
    client.xgroup_create("stream", "group", mkstream=True)
    assert error_code(caught(lambda: client.xgroup_create("stream", "group"))) == "BUSYGROUP"


def test_an_awaited_command_s_error_is_labelled_alike(
    client_module: ModuleType, redis_server: RedisServer
) -> None:
    async def failures() -> list[BaseException]:
        asyncio_module = importlib.import_module(f"{client_module.__name__}.asyncio")
        client = asyncio_module.StrictRedis(host="127.0.0.1", port=redis_server.port)
        try:
            await client.rpush("async-list", "a")
            errors: list[BaseException] = []
            for awaited in (client.get("async-list"), client.evalsha("0" * 40, 0)):
                try:
                    await awaited
                except Exception as error:
                    errors.append(error)
            return errors
        finally:
            await client.delete("async-list")
            await client.connection_pool.disconnect()

    assert [error_code(error) for error in asyncio.run(failures())] == ["WRONGTYPE", "NOSCRIPT"]


def test_a_key_of_another_node_is_moved_and_one_migrating_is_ask(
    library: ClientLibrary, redis_cluster_nodes: ClusterNodes, closing: Closing
) -> None:
    redis_cluster_nodes.settle()
    slot = 7000
    owner = redis_cluster_nodes.node_for_slot(slot)
    other = next(node for node in redis_cluster_nodes.masters if node is not owner)
    wrong = closing(library.client(host="127.0.0.1", port=other.port))
    assert error_code(caught(lambda: wrong.get(key_in_slot(slot)))) == "MOVED"
    redis_cluster_nodes.begin_migration(slot, other)
    try:
        source = closing(library.client(host="127.0.0.1", port=owner.port))
        assert error_code(caught(lambda: source.get(key_in_slot(slot, "absent")))) == "ASK"
    finally:
        redis_cluster_nodes.finish_migration(slot, other)  # the slot moves on, as resharded


# -- What is no reply of the server ----------------------------------------------------------


def test_a_refused_connection_is_none(library: ClientLibrary, client_module: ModuleType) -> None:
    nobody = library.client(host="127.0.0.1", port=free_port(), retry=no_retry(client_module))
    assert error_code(caught(nobody.ping)) == "none"
    nobody.close()


def test_a_timeout_is_none(
    library: ClientLibrary,
    client_module: ModuleType,
    redis_server: RedisServer,
    closing: Closing,
) -> None:
    slow = closing(
        library.client(
            host="127.0.0.1",
            port=redis_server.port,
            socket_timeout=0.1,
            retry=no_retry(client_module),
        )
    )
    assert error_code(caught(lambda: slow.blpop(["no-such-list"], 2))) == "none"


def test_client_side_errors_are_none(
    client: Any, client_module: ModuleType, redis_server: RedisServer
) -> None:
    assert error_code(caught(lambda: client.set("k", {"a": 1}))) == "none"  # DataError
    pool = client_module.ConnectionPool(host="127.0.0.1", port=redis_server.port, max_connections=1)
    taken = take(pool)
    try:
        assert error_code(caught(lambda: take(pool))) == "none"  # MaxConnectionsError
    finally:
        pool.release(taken)
        pool.disconnect()


def take(pool: Any) -> Any:
    """A connection of ``pool``, asked for as the library's version wants."""
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("PING")


# -- Worst forms, no server ------------------------------------------------------------------


def exception_classes() -> list[type[BaseException]]:
    """Every exception class of redis-py's and valkey-py's ``exceptions``, and some of
    Python's."""
    found: list[type[BaseException]] = [Exception, OSError, ValueError, TimeoutError]
    for name in ("redis.exceptions", "valkey.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseException)
        )
    return found


def bare(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """An instance of ``cls`` with ``args``, made without its ``__init__``."""
    error = cls.__new__(cls)
    error.args = args
    return error


messages = st.one_of(
    st.text(),
    st.binary(),
    st.sampled_from(sorted(ERROR_CODES)).flatmap(
        lambda code: st.text().map(lambda rest: code + rest)
    ),
    st.text().map(lambda text: "Command # 1 (" + text + ") of pipeline caused error: " + text),
    st.integers(),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(
    cls=st.sampled_from(exception_classes()),
    args=st.lists(messages, max_size=3).map(tuple),
    status=st.one_of(st.none(), st.text(), st.sampled_from(sorted(ERROR_CODES)), st.integers()),
)
def test_any_exception_gives_a_label_of_the_bounded_set(
    cls: type[BaseException], args: tuple[Any, ...], status: Any
) -> None:
    error = bare(cls, args)
    assert error_code(error) in LABELS
    error.status_code = status  # type: ignore[attr-defined]
    assert error_code(error) in LABELS


@pytest.mark.parametrize(
    "message",
    [
        "",
        b"",
        b"WRONGTYPE Operation",
        "WRONGTYPE " + "x" * 10_000_000,
        "WRONGTYPE" + "x" * 10_000_000,
        "WRONGTYPE\nOperation",
        "wrongtype Operation",
        "WRONGTYPÉ Operation",
        "ERR2 x",
        "NO\x00SCRIPT x",
        "\udcff",
        "Command # 1 (" + "x" * 1_000_000 + ") of pipeline caused error: BUSYKEY x",
    ],
)
def test_a_response_error_of_any_message_is_labelled_quickly(message: Any) -> None:
    started = time.perf_counter()
    label = error_code(bare(redis.ResponseError, (message,)))
    assert time.perf_counter() - started < 0.05
    expected = {b"WRONGTYPE Operation": "WRONGTYPE", "WRONGTYPE " + "x" * 10_000_000: "WRONGTYPE"}
    if isinstance(message, str) and message.endswith("BUSYKEY x"):
        expected[message] = "BUSYKEY"
    assert label == expected.get(message, "ERR")


def test_a_status_code_names_the_label_and_an_unknown_one_is_other() -> None:
    known = bare(redis.ResponseError, ("x",))
    assert error_code(known) == "ERR"
    known.status_code = "NOGROUP"  # type: ignore[attr-defined]
    assert error_code(known) == "NOGROUP"
    unknown = bare(redis.ResponseError, ("SEARCH_SYNTAX x",))
    unknown.status_code = "SEARCH_SYNTAX"  # type: ignore[attr-defined]
    assert error_code(unknown) == "OTHER"
    unknown.status_code = b"ERR"  # type: ignore[attr-defined]  # not text: read the message
    assert error_code(unknown) == "ERR"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("MovedError", "MOVED"),
        ("AskError", "ASK"),
        ("TryAgainError", "TRYAGAIN"),
        ("MasterDownError", "MASTERDOWN"),
        ("ClusterDownError", "CLUSTERDOWN"),
        ("ClusterCrossSlotError", "CROSSSLOT"),
        ("NoScriptError", "NOSCRIPT"),
        ("OutOfMemoryError", "OOM"),
        ("ReadOnlyError", "READONLY"),
        ("NoPermissionError", "NOPERM"),
        ("ExecAbortError", "EXECABORT"),
        ("BusyLoadingError", "LOADING"),
        ("MaxClientsReachedError", "ERR"),
        ("ModuleError", "ERR"),
        ("ConnectionError", "none"),
        ("TimeoutError", "none"),
        ("DataError", "none"),
        ("WatchError", "none"),
        ("InvalidResponse", "none"),
        ("ClusterError", "none"),
        ("MaxConnectionsError", "none"),
    ],
)
@pytest.mark.parametrize("module_name", ["redis.exceptions", "valkey.exceptions"])
def test_a_class_that_stands_for_a_prefix_is_labelled_by_it(
    module_name: str, name: str, code: str
) -> None:
    """As the parsers make them when redis-py 8 is not there to set ``status_code``: the
    prefix stripped from the message."""
    module = pytest.importorskip(module_name)
    cls = getattr(module, name, None)
    if cls is None:
        pytest.skip(f"{module_name} has no {name}")
    assert error_code(bare(cls, ("Operation against a key",))) == code


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Authentication required.", "NOAUTH"),
        ("invalid username-password pair or user is disabled.", "WRONGPASS"),
        ("Invalid Username or Password", "WRONGPASS"),
        ("invalid password", "ERR"),
        ("Client sent AUTH, but no password is set", "ERR"),
        ("NOAUTH Authentication required.", "NOAUTH"),
        ("", "WRONGPASS"),
    ],
)
def test_an_authentication_error_without_status_code_is_told_by_its_message(
    message: str, code: str
) -> None:
    assert error_code(bare(redis.AuthenticationError, (message,))) == code


def test_max_clients_reached_without_a_class_of_its_own_is_err() -> None:
    """redis-py 5 and valkey-py raise ``ERR max number of clients reached`` as a plain
    ``ConnectionError``."""
    assert error_code(bare(redis.ConnectionError, ("max number of clients reached",))) == "ERR"


class Hostile(redis.ResponseError):
    """An error whose every reading raises."""

    def __str__(self) -> str:
        raise RuntimeError("str")

    @property
    def args(self) -> Any:  # type: ignore[override]
        raise RuntimeError("args")

    @property
    def status_code(self) -> Any:  # type: ignore[override]
        raise RuntimeError("status_code")


class NoMessage(redis.ResponseError):
    def __str__(self) -> str:
        raise RuntimeError("str")


def test_an_exception_that_raises_when_read_gives_a_label() -> None:
    assert error_code(Hostile.__new__(Hostile)) in LABELS
    assert error_code(bare(NoMessage, ("WRONGTYPE x",))) == "WRONGTYPE"  # str() not called
    assert error_code(bare(NoMessage, ())) == "ERR"
    assert error_code(KeyboardInterrupt()) == "none"
