"""The ``command`` label of a Redis command: its name if it is a Redis command, else
``OTHER``, looked up in a bounded cache (command names come from code, mostly); the
``code`` label of a failed command: the error prefix of the server's reply."""

from __future__ import annotations

from typing import Any

from ._commands import split_name, upper_word

#: Redis commands that are ``command`` label values; any other command is ``OTHER``. A
#: command of two words (``CLIENT SETNAME``) is labelled by its first.
COMMANDS = frozenset(
    """
    ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITFIELD_RO BITOP BITPOS
    BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND
    CONFIG COPY DBSIZE DEBUG DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVAL_RO EVALSHA
    EVALSHA_RO EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME FAILOVER FCALL FCALL_RO FLUSHALL
    FLUSHDB FUNCTION GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER
    GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET GETBIT GETDEL GETEX
    GETRANGE GETSET HDEL HELLO HEXISTS HEXPIRE HEXPIREAT HEXPIRETIME HGET HGETALL HGETDEL
    HGETEX HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HPERSIST HPEXPIRE HPEXPIREAT
    HPEXPIRETIME HPTTL HRANDFIELD HSCAN HSET HSETEX HSETNX HSTRLEN HTTL HVALS INCR INCRBY
    INCRBYFLOAT INFO KEYS LASTSAVE LATENCY LCS LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP
    LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MEMORY MGET MIGRATE MODULE MONITOR MOVE MSET
    MSETNX MULTI OBJECT PERSIST PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFDEBUG PFMERGE
    PFSELFTEST PING PSETEX PSUBSCRIBE PSYNC PTTL PUBLISH PUBSUB PUNSUBSCRIBE RANDOMKEY
    READONLY READWRITE RENAME RENAMENX REPLCONF REPLICAOF RESET RESTORE RESTORE-ASKING ROLE
    RPOP RPOPLPUSH RPUSH RPUSHX SADD SAVE SCAN SCARD SCRIPT SDIFF SDIFFSTORE SELECT SET
    SETBIT SETEX SETNX SETRANGE SHUTDOWN SINTER SINTERCARD SINTERSTORE SISMEMBER SLAVEOF
    SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP SPUBLISH SRANDMEMBER SREM SSCAN
    SSUBSCRIBE STRALGO STRLEN SUBSCRIBE SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB SYNC
    TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH VADD VCARD VDIM VEMB VGETATTR VINFO
    VLINKS VRANDMEMBER VREM VSETATTR VSIM WAIT WAITAOF WATCH XACK XADD XAUTOCLAIM XCLAIM
    XDEL XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD
    ZCARD ZCOUNT ZDIFF ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP
    ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK
    ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX
    ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNION ZUNIONSTORE
""".split()
)
#: The ``command`` label of a pipeline's and of a transaction's round trip.
ROUND_TRIPS = frozenset({"PIPELINE", "MULTI"})

_LABEL_CACHE_SIZE = 4096
_labels: dict[Any, str] = {}
#: Characters (or bytes) of the longest name kept as a key, of the label cache or of a
#: record: a command named in one string with its arguments (``"SET k <100 kB>"``) is
#: labelled and tallied by its label instead, and nothing keeps its arguments.
NAME_LIMIT = 64


def command_label(name: Any) -> str:
    """The ``command`` label of a command name as redis-py sends it (``"GET"``, ``b"get"``)."""
    try:
        return _labels[name]
    except KeyError:
        pass
    words, _args = split_name((name,))  # as redis-py sends it: "GET k" sends GET
    word = upper_word(words[0]) if words else ""
    label = word if word in COMMANDS or word in ROUND_TRIPS else "OTHER"
    # Bounded, in entries and in bytes: command names come from code, mostly.
    if len(_labels) < _LABEL_CACHE_SIZE and is_short(name):
        _labels[name] = label
    return label


def is_short(name: Any) -> bool:
    """Whether ``name`` is text or bytes of at most :data:`NAME_LIMIT`: short enough to be
    kept as a key."""
    return isinstance(name, (str, bytes)) and len(name) <= NAME_LIMIT


#: The Redis error prefixes the ``code`` label names; any other prefix is ``OTHER``. Those
#: Redis 6.2 to 8 and Valkey 7 to 9 reply with, and ``ERR``.
ERROR_CODES = frozenset(
    """
    ASK BUSY BUSYGROUP BUSYKEY CLUSTERDOWN CROSSSLOT DENIED ERR EXECABORT INPROG INVALIDOBJ
    IOERR LOADING MASTERDOWN MISCONF MOVED NOAUTH NOGOODPRIMARY NOGOODSLAVE NOGROUP
    NOMASTERLINK NOPERM NOPROTO NOQUORUM NOREPLICAS NOSCRIPT NOTBUSY OOM READONLY REDIRECT
    TRYAGAIN UNBLOCKED UNKILLABLE WRONGPASS WRONGTYPE
""".split()
)

#: The classes of redis-py and valkey-py that stand for one prefix, which they strip from
#: the message, by name: the first of an error's classes (most specific first) found here
#: names its code. ``MovedError`` is a subclass of ``AskError``, ``MasterDownError`` of
#: ``ClusterDownError``, ``BusyLoadingError`` and ``MaxClientsReachedError`` of
#: ``ConnectionError``.
_CLASS_CODES = {
    "MovedError": "MOVED",
    "AskError": "ASK",
    "TryAgainError": "TRYAGAIN",
    "MasterDownError": "MASTERDOWN",
    "ClusterDownError": "CLUSTERDOWN",
    "ClusterCrossSlotError": "CROSSSLOT",
    "NoScriptError": "NOSCRIPT",
    "OutOfMemoryError": "OOM",
    "ReadOnlyError": "READONLY",
    "NoPermissionError": "NOPERM",
    "ExecAbortError": "EXECABORT",
    "BusyLoadingError": "LOADING",
    # Replies of ERR that get a class of their own.
    "MaxClientsReachedError": "ERR",
    "AuthenticationWrongNumberOfArgsError": "ERR",
    "ModuleError": "ERR",
    "NoSuchFieldsetError": "ERR",
    "ExternalAuthProviderError": "ERR",
}
#: The text an ``ERR`` reply of the server's own refusal of ``AUTH`` starts with, which
#: redis-py raises as an ``AuthenticationError`` (lower-case).
_ERR_AUTH_TEXTS = ("invalid password", "auth <password> called", "client sent auth")
#: What redis-py and valkey-py put before the message of a pipeline's failed command.
_PIPELINE_HEAD = "Command # "
_PIPELINE_TEXT = " of pipeline caused error: "
#: Characters of a message read for its first word: the longest code redis-py 8 keeps
#: (64), and the space after it.
_WORD_READ = 66


def error_code(error: BaseException) -> str:
    """The ``code`` label of a failed command: the error prefix of the server's reply
    (``WRONGTYPE``, ``MOVED``, ``NOSCRIPT``, ``ERR``...) if it is one of
    :data:`ERROR_CODES`, ``OTHER`` for another prefix, ``none`` for an error that is no
    reply of the server (connection refused, a timeout, a client-side error such as
    ``DataError`` or ``MaxConnectionsError``). Never raises.

    The prefix is the ``status_code`` redis-py 8 sets, else the error's class (a class of
    redis-py or valkey-py per prefix: ``NoScriptError`` is ``NOSCRIPT``), else, for a
    ``ResponseError``, the first word of its message (:func:`_reply_code`). An
    ``AuthenticationError`` with no ``status_code`` is ``NOAUTH`` when its message says
    that authentication is required, ``ERR`` for the server's ``ERR`` replies to ``AUTH``
    (``invalid password``...), and else ``WRONGPASS``.
    """
    try:
        status = getattr(error, "status_code", None)
        if isinstance(status, str):
            return status if status in ERROR_CODES else "OTHER"
        for cls in type(error).__mro__:
            name = cls.__name__
            code = _CLASS_CODES.get(name)
            if code is not None:
                return code
            if name == "ResponseError":
                return _reply_code(_message(error))
            if name == "AuthenticationError":
                return _auth_code(_message(error))
            if name == "ConnectionError":  # redis-py 5 and valkey-py: no class of its own
                return "ERR" if _message(error) == "max number of clients reached" else "none"
    except Exception:  # an error of a strange kind: its label is not worth a failure
        pass
    return "none"


def _message(error: BaseException) -> str:
    """The message of ``error``: its first argument as text (bytes read as Latin-1), else
    ``""``; ``str(error)`` is never called, since it may raise."""
    args = error.args
    message = args[0] if isinstance(args, tuple) and args else ""
    if isinstance(message, (bytes, bytearray)):
        return bytes(message[:_WORD_READ]).decode("latin-1")
    return message if isinstance(message, str) else ""


def _reply_code(message: str) -> str:
    """The code of a ``ResponseError`` without ``status_code``, by its message.

    redis-py before 8 and valkey-py keep a prefix they have no class for in the message
    (``WRONGTYPE Operation against a key...``) and strip ``ERR`` (``unknown command...``),
    which leaves messages that start with upper-case words too (``DB index is out of
    range``, ``XX and NX options...``, ``EXEC without MULTI``). So the first word is the
    code when it is one of :data:`ERROR_CODES`, and else the reply was an ``ERR``: with
    these libraries an unknown prefix is labelled ``ERR``, not ``OTHER``. A pipeline's
    message is read after redis-py's words that name the failed command.
    """
    if message.startswith(_PIPELINE_HEAD):
        found = message.find(_PIPELINE_TEXT)
        if found >= 0:
            message = message[found + len(_PIPELINE_TEXT) :]
    word = message[:_WORD_READ].split(" ", 1)[0]
    return word if word in ERROR_CODES else "ERR"


def _auth_code(message: str) -> str:
    """The code of an ``AuthenticationError`` without ``status_code``, by its message:
    ``NOAUTH`` (``Authentication required.``), ``ERR`` (the server's ``ERR`` replies to
    ``AUTH``), else ``WRONGPASS`` (the server's ``invalid username-password pair``, and
    redis-py's ``Invalid Username or Password`` when ``AUTH`` is not answered ``OK``)."""
    head = message[:_WORD_READ]
    word = head.split(" ", 1)[0]
    if word in ERROR_CODES:
        return word
    lowered = head.lower()
    if lowered.startswith("authentication required"):
        return "NOAUTH"
    if lowered.startswith(_ERR_AUTH_TEXTS):
        return "ERR"
    return "WRONGPASS"
