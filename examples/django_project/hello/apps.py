"""Django app configuration of ``hello``."""

from django.apps import AppConfig


class HelloConfig(AppConfig):
    name = "hello"
