"""Flask hello for the benchmark: one route returning plaintext."""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)


@app.get("/")
def hello() -> Response:
    return Response("Hello, World!", mimetype="text/plain")
