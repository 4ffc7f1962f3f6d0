"""The example project's only Django app: a few views to exercise porch."""
