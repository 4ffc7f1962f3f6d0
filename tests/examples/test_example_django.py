"""examples/django_project under the PEP 3333 validator, in a child process, no server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.under_test import PORCH_PATH

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROJECT = REPO / "examples" / "django_project"


@dataclass
class Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    errors: str

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def run_django(*requests: dict[str, Any]) -> tuple[list[Reply], str]:
    """Run ``requests`` through the Django example in a fresh interpreter."""
    for request in requests:
        if "body" in request:
            request["body_b64"] = base64.b64encode(request.pop("body")).decode()
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the project's wsgi.py sets its own
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), PORCH_PATH, *filter(None, [env.get("PYTHONPATH")])]
    )
    done = subprocess.run(
        [sys.executable, str(HERE / "django_driver.py"), str(PROJECT)],
        input=json.dumps(list(requests)),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    replies = [
        Reply(
            status=item["status"],
            headers=[tuple(pair) for pair in item["headers"]],
            body=base64.b64decode(item["body_b64"]),
            errors=item["errors"],
        )
        for item in json.loads(done.stdout)
    ]
    return replies, done.stderr


def test_project_layout_is_what_porch_loads() -> None:
    assert (PROJECT / "mysite" / "wsgi.py").is_file()
    assert (PROJECT / "manage.py").is_file()


def test_hello_json_and_404() -> None:
    (hello, as_json, missing), _ = run_django({"path": "/"}, {"path": "/json"}, {"path": "/nope"})
    assert hello.status == "200 OK"
    assert hello.body == b"Hello from Django!"
    assert hello.header("Content-Type") == "text/plain; charset=utf-8"

    assert as_json.header("Content-Type") == "application/json"
    data = json.loads(as_json.body)
    assert data["message"] == "Hello, JSON!"
    assert data["path"] == "/json"
    assert isinstance(data["pid"], int)

    assert missing.status_code == 404


def test_form_get_and_csrf_exempt_post() -> None:
    body = urlencode({"name": "Ada", "message": "<b>hi</b> & bye"}).encode()
    (page, posted), _ = run_django(
        {"path": "/form"},
        {
            "method": "POST",
            "path": "/form",
            "body": body,
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
    )
    assert page.status_code == 200
    assert b'<form method="post" action="/form">' in page.body
    assert b"You sent" not in page.body

    assert posted.status_code == 200  # no CSRF token needed: the view is exempt
    assert b"<dt>name</dt><dd>Ada</dd>" in posted.body
    assert b"&lt;b&gt;hi&lt;/b&gt; &amp; bye" in posted.body


def test_error_view_is_a_logged_500_with_debug_off() -> None:
    (reply,), stderr = run_django({"path": "/error"})
    assert reply.status_code == 500
    assert b"Traceback" not in reply.body  # DEBUG is False: no debug page
    assert "RuntimeError: /error was requested" in stderr
