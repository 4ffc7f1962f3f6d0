"""A small Flask app for trying porch with a real framework: ``porch examples/flask_app.py``.

Routes:

    /          Hello from Flask! (text/plain)
    /json      a JSON object built with jsonify
    /upload    POST: size and sha256 of the raw request body
    /form      GET: an HTML form; POST: the submitted fields (escaped by Jinja)
"""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, render_template_string, request

app = Flask(__name__)

FORM_PAGE = """<!doctype html>
<html>
<head><title>porch form</title></head>
<body>
  <h1>Tell porch something</h1>
  <form method="post" action="{{ url_for('form') }}">
    <label>Name <input name="name" value="{{ fields.get('name', '') }}"></label>
    <label>Message <textarea name="message">{{ fields.get('message', '') }}</textarea></label>
    <button type="submit">Send</button>
  </form>
  {% if fields %}
  <h2>You sent</h2>
  <dl>
    {% for key, value in fields.items() %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}
  </dl>
  {% endif %}
</body>
</html>
"""


@app.get("/")
def hello() -> Response:
    return Response("Hello from Flask!", mimetype="text/plain")


@app.get("/json")
def json_view() -> Response:
    return jsonify(message="Hello, JSON!", server="porch", numbers=[1, 2, 3])


@app.post("/upload")
def upload() -> Response:
    body = request.get_data(cache=False)
    return jsonify(size=len(body), sha256=hashlib.sha256(body).hexdigest())


@app.route("/form", methods=["GET", "POST"])
def form() -> str:
    fields = request.form.to_dict() if request.method == "POST" else {}
    return render_template_string(FORM_PAGE, fields=fields)


application = app
