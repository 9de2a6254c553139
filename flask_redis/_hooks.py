"""Hooks on the methods of one object, set on the object itself rather than on its class.

Swapping an object's class for a subclass (``obj.__class__ = Sub``) costs every later
read of its attributes: on CPython 3.11 and later, an object with few attributes keeps
them in a compact layout that the interpreter reads fast, and assigning its class (or,
on 3.11 and 3.12, reading its ``__dict__``) moves them to a dictionary, for good. A redis-py
``ConnectionPool`` read that way costs a GET about 5,000 instructions more (5% of it),
whether or not the hooked method is ever called. A hook set as an attribute of the object
leaves its layout alone: only the calls of the hooked method go through it.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

Make = Callable[[Callable[..., Any], "weakref.ReferenceType[Any]"], Callable[..., Any]]


def hook(target: Any, name: str, make: Make) -> None:
    """Make ``target.<name>`` the function ``make(call, ref)`` returns: ``call`` calls the
    method as it was (its class's, or a hook set before), ``ref()`` is ``target``. Neither
    holds ``target`` strongly: a cycle would keep it alive until the garbage collector
    runs, where redis-py frees a pool or a connection at once."""
    ref = weakref.ref(target)
    current = getattr(target, name)
    function = getattr(current, "__func__", None)
    if function is not None and getattr(current, "__self__", None) is target:

        def call(*args: Any, **kwargs: Any) -> Any:
            return function(ref(), *args, **kwargs)

    else:  # a hook set before, which holds target weakly itself
        call = current
    setattr(target, name, make(call, ref))
