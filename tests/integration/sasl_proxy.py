"""A SASL-terminating Kafka proxy for the tests: the local broker has no SASL of its own.

Each client connection gets its own connection to the broker. Until the client has
authenticated, the proxy reads its requests one by one: ``ApiVersions`` (v0-v2) goes
to the broker and comes back with ``SaslHandshake`` v1 and ``SaslAuthenticate`` v0-v1
added; ``SaslHandshake`` and ``SaslAuthenticate`` it answers itself, for PLAIN and
SCRAM-SHA-256/512 (RFC 5802, server side) against one user; anything else closes the
connection, as a broker does. Once authenticated, bytes pass through unchanged both
ways. With ``tls``, it listens with TLS (SASL_SSL); without, in the clear
(SASL_PLAINTEXT). It runs on an event loop of its own in a thread, so it keeps serving
while a test blocks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
import threading
from collections import Counter
from typing import Any

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
SCRAM_ITERATIONS = 4096
HASHES: dict[str, Any] = {
    "SCRAM-SHA-256": hashlib.sha256,
    "SCRAM-SHA-512": hashlib.sha512,
}


class AuthenticationFailed(Exception):
    """The client's credentials are wrong (answered with SASL_AUTHENTICATION_FAILED)."""


def string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def frame(correlation_id: int, body: bytes) -> bytes:
    payload = struct.pack(">i", correlation_id) + body
    return struct.pack(">i", len(payload)) + payload


class Plain:
    """RFC 4616: one message, ``authzid NUL user NUL password``."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def step(self, token: bytes) -> tuple[bytes, bool]:
        _, user, password = token.decode().split("\0")
        if not (
            hmac.compare_digest(user, self.user) and hmac.compare_digest(password, self.password)
        ):
            raise AuthenticationFailed
        return b"", True


class Scram:
    """RFC 5802, server side: client-first → server-first → client-final → server-final."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.hash = HASHES[mechanism]
        self.user = user
        self.salt = os.urandom(16)
        salted = hashlib.pbkdf2_hmac(
            self.hash().name, password.encode(), self.salt, SCRAM_ITERATIONS
        )
        self.stored_key = self.hash(self._hmac(salted, b"Client Key")).digest()
        self.server_key = self._hmac(salted, b"Server Key")
        self.first: tuple[str, str] | None = None  # client-first-bare, server-first

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash).digest()

    def step(self, token: bytes) -> tuple[bytes, bool]:
        text = token.decode()
        if self.first is None:
            bare = text.split(",", 2)[2]  # after the GS2 header "n,,"
            fields = dict(item.split("=", 1) for item in bare.split(","))
            if fields["n"].replace("=2C", ",").replace("=3D", "=") != self.user:
                raise AuthenticationFailed
            nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
            salt = base64.b64encode(self.salt).decode()
            server_first = f"r={nonce},s={salt},i={SCRAM_ITERATIONS}"
            self.first = (bare, server_first)
            return server_first.encode(), False
        without_proof, _, proof = text.rpartition(",p=")
        fields = dict(item.split("=", 1) for item in without_proof.split(","))
        bare, server_first = self.first
        if fields["c"] != "biws" or fields["r"] != server_first.split(",")[0][2:]:
            raise AuthenticationFailed  # not "n,," (no channel binding), or another nonce
        message = f"{bare},{server_first},{without_proof}".encode()
        signature = self._hmac(self.stored_key, message)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if not hmac.compare_digest(self.hash(client_key).digest(), self.stored_key):
            raise AuthenticationFailed
        verifier = base64.b64encode(self._hmac(self.server_key, message)).decode()
        return f"v={verifier}".encode(), True


class SaslProxy:
    """Listen on ``port`` (loopback), authenticate ``user``, forward to ``upstream_port``."""

    def __init__(
        self,
        port: int,
        upstream_port: int,
        user: str,
        password: str,
        *,
        tls: ssl.SSLContext | None = None,
        mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    ) -> None:
        self.port, self.upstream_port, self.tls = port, upstream_port, tls
        self.user, self.password, self.mechanisms = user, password, mechanisms
        self.authenticated: Counter[str] = Counter()  # mechanism → connections let through
        self.failed: Counter[str] = Counter()  # mechanism → wrong credentials
        self.refused = 0  # connections that sent anything else before authenticating
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> SaslProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the SASL proxy did not listen on port {self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._connection(reader, writer)
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
                pass  # a client or the broker went away
            finally:
                tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", self.port, ssl=self.tls)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            if await self._authenticate(reader, writer, up_reader, up_writer):
                await self._pipe(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        exchange: Plain | Scram | None = None
        mechanism = ""
        while True:
            request = await read_frame(reader)
            key, version, correlation_id, id_length = struct.unpack(">hhih", request[:10])
            body = request[10 + max(id_length, 0) :]
            if key == API_VERSIONS and version <= 2:
                up_writer.write(struct.pack(">i", len(request)) + request)
                response = await read_frame(up_reader)
                writer.write(frame(correlation_id, with_sasl(response[4:])))
            elif key == SASL_HANDSHAKE and version == 1 and exchange is None:
                (length,) = struct.unpack(">h", body[:2])
                mechanism = body[2 : 2 + length].decode()
                known = b"".join(string(m) for m in self.mechanisms)
                listed = struct.pack(">i", len(self.mechanisms)) + known
                if mechanism not in self.mechanisms:
                    error = struct.pack(">h", UNSUPPORTED_SASL_MECHANISM)
                    writer.write(frame(correlation_id, error + listed))
                    await writer.drain()
                    return False
                exchange = (
                    Plain(self.user, self.password)
                    if mechanism == "PLAIN"
                    else Scram(mechanism, self.user, self.password)
                )
                writer.write(frame(correlation_id, struct.pack(">h", 0) + listed))
            elif key == SASL_AUTHENTICATE and version <= 1 and exchange is not None:
                (length,) = struct.unpack(">i", body[:4])
                lifetime = struct.pack(">q", 0) if version == 1 else b""
                try:
                    token, done = exchange.step(body[4 : 4 + length])
                except (AuthenticationFailed, ValueError, KeyError, IndexError):
                    self.failed[mechanism] += 1
                    message = f"Authentication failed: invalid credentials for {mechanism}"
                    answer = struct.pack(">h", SASL_AUTHENTICATION_FAILED) + string(message)
                    writer.write(frame(correlation_id, answer + struct.pack(">i", 0) + lifetime))
                    await writer.drain()
                    return False
                answer = struct.pack(">h", 0) + string(None) + struct.pack(">i", len(token))
                writer.write(frame(correlation_id, answer + token + lifetime))
                if done:
                    await writer.drain()
                    self.authenticated[mechanism] += 1
                    return True
            else:
                self.refused += 1
                return False
            await writer.drain()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()

        both = [
            asyncio.create_task(copy(reader, up_writer)),
            asyncio.create_task(copy(up_reader, writer)),
        ]
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in both:
                task.cancel()
            await asyncio.gather(*both, return_exceptions=True)


def with_sasl(body: bytes) -> bytes:
    """An ApiVersions response body (v0-v2) that also lists the SASL APIs the proxy answers."""
    error, count = struct.unpack(">hi", body[:6])
    entries = [struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i]) for i in range(count)]
    rest = body[6 + 6 * count :]  # throttle_time_ms from v1 on
    entries = [e for e in entries if e[0] not in (SASL_HANDSHAKE, SASL_AUTHENTICATE)]
    entries += [(SASL_HANDSHAKE, 1, 1), (SASL_AUTHENTICATE, 0, 1)]
    packed = b"".join(struct.pack(">hhh", *e) for e in entries)
    return struct.pack(">hi", error, len(entries)) + packed + rest
