"""The example Django project served by porch (``mysite.wsgi:application``)."""
