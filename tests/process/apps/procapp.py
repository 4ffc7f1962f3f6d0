"""A small WSGI app for the process tests; it reports on stderr when a slow request starts.

Routes: ``/`` ok, ``/pid`` the worker pid, ``/sleep?s=N`` (prints ``procapp: sleeping``
first), ``/freeze`` (the worker SIGSTOPs itself: no more heartbeats), ``/exit0`` (the
worker calls ``os._exit(0)``), ``/big`` (grows the worker's memory by 64 MiB),
``/churn?mib=N`` (allocates N MiB in 1 MiB pieces, writes them, frees them),
``/upload`` (reads the body, printing ``procapp: upload started`` after its first 5
bytes; answers how many bytes it read), ``/modules`` (the names in the worker's
``sys.modules``, one a line).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

_hoard: list[bytes] = []


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/sleep":
        seconds = float(query.get("s", ["1"])[0])
        print(f"procapp: sleeping {seconds:g} in {os.getpid()}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        body = f"slept {seconds:g}".encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/exit0":
        os._exit(0)
    elif path == "/freeze":
        print(f"procapp: freezing {os.getpid()}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        body = b"thawed"
    elif path == "/upload":
        stream = environ["wsgi.input"]
        received = len(stream.read(5))
        print(f"procapp: upload started in {os.getpid()}", file=sys.stderr, flush=True)
        while part := stream.read(65536):
            received += len(part)
        body = f"received {received}".encode()
    elif path == "/modules":
        body = "\n".join(sorted(sys.modules)).encode()
    elif path == "/churn":
        pieces = [bytearray(1024 * 1024) for _ in range(int(query.get("mib", ["1"])[0]))]
        body = f"churned {len(pieces)} MiB".encode()
        del pieces
    elif path == "/big":
        _hoard.append(os.urandom(64 * 1024 * 1024))
        body = b"big"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
