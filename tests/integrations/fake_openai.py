"""Running real framework agents offline: a fake OpenAI-compatible server on 127.0.0.1 and a
guard that refuses any connection or name lookup off this machine (fixtures in conftest.py)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
}


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The fake model's answer: it repeats the last user message, or reports a tool result."""
    last = messages[-1]
    if last["role"] == "tool":
        return f"The weather: {last['content']}"
    return f"You said: {last['content']}"


class FakeOpenAI:
    """A threaded HTTP server answering POST /v1/chat/completions like the OpenAI API.

    A request offering tools whose last message is the user's gets one tool call
    (`TOOL_CALL`); any other request gets the text of `reply_to`. ``stream: true`` is
    answered with server-sent events, one chunk per word. Every request is recorded.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of the chat-completion requests, in order."""
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append({"method": "GET", "path": self.path, "body": None})
                self.send_error(404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                fake.requests.append(
                    {"method": "POST", "path": self.path, "body": body, "client": self.client_address[0]}
                )
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                messages = body["messages"]
                tool_call = TOOL_CALL if body.get("tools") and messages[-1]["role"] == "user" else None
                text = None if tool_call else reply_to(messages)
                if body.get("stream"):
                    self._stream(body["model"], text, tool_call)
                else:
                    self._complete(body["model"], text, tool_call)

            def _complete(self, model: str, text: str | None, tool_call: dict[str, Any] | None) -> None:
                message: dict[str, Any] = {"role": "assistant", "content": text}
                finish = "tool_calls" if tool_call else "stop"
                if tool_call:
                    message["tool_calls"] = [tool_call]
                payload = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, model: str, text: str | None, tool_call: dict[str, Any] | None) -> None:
                if tool_call:
                    deltas: list[dict[str, Any]] = [
                        {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **tool_call}]}
                    ]
                else:
                    deltas = [{"role": "assistant", "content": p} for p in re.findall(r"\S+\s*", text or "")]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                finish = {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_call else "stop"}
                choices = [[{"index": 0, "delta": d, "finish_reason": None}] for d in deltas] + [[finish]]
                for choice in choices:
                    chunk = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": choice,
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def is_local(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Refuses (and records) every connection and name lookup that would leave this machine."""

    def __init__(self) -> None:
        self.refused: list[Any] = []

    def check(self, family: int, address: Any) -> None:
        if family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not is_local(host):
            self.refused.append(address)
            raise ConnectionRefusedError(f"test network guard: no connection to {address!r}")
