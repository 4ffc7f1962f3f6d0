"""Child process of test_example_django: load the Django example as porch would, run requests.

Usage: ``python django_driver.py PROJECT_DIR < requests.json``; prints the results
as JSON. A subprocess keeps Django's process-wide settings out of the test run.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from wsgi_call import call_wsgi

from porch.wsgi.loader import load_app


def main() -> None:
    project_dir = sys.argv[1]
    requests: list[dict[str, Any]] = json.load(sys.stdin)
    # The same call as ``porch --chdir PROJECT_DIR mysite.wsgi:application``.
    app = load_app("mysite.wsgi:application", chdir=project_dir)
    results = []
    for request in requests:
        result = call_wsgi(
            app,
            request.get("method", "GET"),
            request.get("path", "/"),
            query=request.get("query", ""),
            body=base64.b64decode(request.get("body_b64", "")),
            headers=request.get("headers"),
        )
        results.append(
            {
                "status": result.status,
                "headers": result.headers,
                "body_b64": base64.b64encode(result.body).decode(),
                "errors": result.errors,
            }
        )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
