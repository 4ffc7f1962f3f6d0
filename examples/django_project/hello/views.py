"""Views of the example Django app: hello, JSON, a form POST and a deliberate error."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django!", content_type="text/plain; charset=utf-8")


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"message": "Hello, JSON!", "server": "porch", "path": request.path, "pid": os.getpid()}
    )


@csrf_exempt  # an example form without sessions or cookies; real forms keep CSRF on
def form(request: HttpRequest) -> HttpResponse:
    fields = request.POST.dict() if request.method == "POST" else {}
    return render(request, "hello/form.html", {"fields": fields})


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("/error was requested: this exception is on purpose")
