"""URL routes of the example Django project."""

from django.urls import path
from hello import views

urlpatterns = [
    path("", views.hello, name="hello"),
    path("json", views.json_view, name="json"),
    path("form", views.form, name="form"),
    path("error", views.error, name="error"),
]
