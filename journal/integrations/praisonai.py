"""PraisonAI: make every ``praisonaiagents`` Agent of the process persist through `journal`.

    from journal.integrations.praisonai import use_journal

    use_journal("./sessions")     # before the first agent runs
    agent = Agent(..., memory=MemoryConfig(session_id="s1"))

An Agent with a session id takes its store from ``praisonaiagents.session.store`` the first
time it runs (``get_default_session_store()``), and that function returns a store assigned to
the module's ``_default_store`` as it is: the hook praisonaiagents documents for injecting a
store. `use_journal` assigns a `journal.DefaultSessionStore` there. An Agent that already ran
keeps the store it took; one given its own store (``agent._session_store``) or a database
(``MemoryConfig(db=...)``) is not affected.

Requires ``praisonaiagents`` 1.7.17 or a later 1.7 release: ``pip install 'journal[praisonai]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from types import ModuleType
from typing import Any

from ..store.session_store import DefaultSessionStore

__all__ = ["use_journal"]

_STORE_MODULE = "praisonaiagents.session.store"
_lock = threading.Lock()
# The store use_journal installed last and the arguments it was built from.
_installed: tuple[DefaultSessionStore, str, dict[str, Any]] | None = None


def use_journal(
    session_dir: str | os.PathLike[str] = "./sessions", **store_options: Any
) -> DefaultSessionStore:
    """Make every PraisonAI Agent of this process persist its sessions in a journal store.

    Installs a `DefaultSessionStore` on `session_dir` as praisonaiagents' default session
    store. Idempotent: called again with the same directory and options while that store is
    still installed, it returns the same store; with other arguments it installs a new one
    (the previous store stays open for agents that already hold it, and is compacted at exit).

    Args:
        session_dir: the store directory, created if missing. A relative path is taken
            relative to the current directory now, so a later ``os.chdir`` does not move it.
        **store_options: keyword arguments of `DefaultSessionStore` (``durability``,
            ``lock_timeout``, ...).

    Returns:
        The installed store, for direct use (``get_chat_history``, ``close``, ...).

    Raises:
        ImportError: praisonaiagents is not installed, or lacks the default-store hook.
        StoreRootError: `session_dir` is a file or cannot be written.
    """
    global _installed
    module = _praisonai_store_module()
    root = os.path.abspath(os.fspath(session_dir))
    with _lock, _module_lock(module):
        current: object = getattr(module, "_default_store", None)
        if _installed is not None and _installed[0] is current and _installed[1:] == (root, store_options):
            return _installed[0]
        store = DefaultSessionStore(root, **store_options)
        setattr(module, "_default_store", store)  # noqa: B010 (a module attribute, not typed)
        _installed = (store, root, dict(store_options))
        return store


def _praisonai_store_module() -> ModuleType:
    try:
        module = importlib.import_module(_STORE_MODULE)
    except ImportError as exc:
        raise ImportError(
            "journal.integrations.praisonai needs praisonaiagents: pip install 'journal[praisonai]'"
        ) from exc
    if not hasattr(module, "_default_store"):
        raise ImportError(
            f"this praisonaiagents has no {_STORE_MODULE}._default_store to install a store in; "
            "journal supports praisonaiagents>=1.7.17,<1.8: pip install 'journal[praisonai]'"
        )
    return module


def _module_lock(module: ModuleType) -> contextlib.AbstractContextManager[Any]:
    """praisonaiagents' own lock round the singleton, so its lazy creation cannot race ours."""
    lock = getattr(module, "_store_lock", None)
    return lock if lock is not None else contextlib.nullcontext()
