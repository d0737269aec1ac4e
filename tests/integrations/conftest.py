"""Fixtures for running real framework agents offline: `fake_llm` (a fake OpenAI-compatible
server on 127.0.0.1), `no_network` (any other connection or name lookup is refused) and
`praisonai` (praisonaiagents pointed at the server, inside the test's directory)."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fake_openai import PROXY_VARIABLES, FakeOpenAI, NetworkGuard, is_local

import journal.integrations.praisonai


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        guard.check(sock.family, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard.check(sock.family, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_local(host.decode() if isinstance(host, bytes) else host):
            guard.refused.append(host)
            raise socket.gaierror(f"test network guard: no lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return guard


@pytest.fixture
def praisonai(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_llm: FakeOpenAI, no_network: NetworkGuard
) -> Iterator[ModuleType]:
    """praisonaiagents, pointed at `fake_llm`, run inside `tmp_path`, with no default session
    store installed; everything is restored afterwards."""
    monkeypatch.chdir(tmp_path)  # MemoryConfig writes ./.praisonai
    for name in (*PROXY_VARIABLES, "OPENAI_API_BASE", "OPENAI_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("PRAISONAI_TELEMETRY_DISABLED", "true")
    monkeypatch.setenv("PRAISONAI_HOME", str(tmp_path / "praisonai-home"))
    store_module = importlib.import_module("praisonaiagents.session.store")
    monkeypatch.setattr(store_module, "_default_store", None)
    monkeypatch.setattr(journal.integrations.praisonai, "_installed", None)
    yield importlib.import_module("praisonaiagents")
    assert no_network.refused == [], "something tried to leave this machine"
