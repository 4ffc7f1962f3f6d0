"""load_app: every spec form, every error, and the user-traceback stripping."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from porch.errors import AppLoadError
from porch.wsgi.loader import load_app, parse_spec, prepare_import_path

HELLO = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from application"]
"""


def write(base: Path, relative: str, source: str) -> Path:
    path = base / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def call(app: Any) -> tuple[str, bytes]:
    """Run ``app`` under wsgiref's validator with a minimal environ."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    environ: dict[str, Any] = {"QUERY_STRING": ""}
    setup_testing_defaults(environ)
    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    return seen[0], body


def load_error(spec: str, **kwargs: Any) -> AppLoadError:
    with pytest.raises(AppLoadError) as info:
        load_app(spec, **kwargs)
    return info.value


# -- forms -----------------------------------------------------------------


def test_module_colon_attr(app_dir: Path) -> None:
    write(app_dir, "hello_attr.py", HELLO + "\nmy_app = application\n")
    assert call(load_app("hello_attr:my_app")) == ("200 OK", b"hello from application")


def test_dotted_module_and_attribute_path(app_dir: Path) -> None:
    write(app_dir, "pkg_a/__init__.py", "")
    write(
        app_dir,
        "pkg_a/sub.py",
        HELLO + "\nclass Holder:\n    class inner:\n        app = staticmethod(application)\n",
    )
    app = load_app("pkg_a.sub:Holder.inner.app")
    assert call(app)[1] == b"hello from application"


def test_module_alone_prefers_application_over_app(app_dir: Path) -> None:
    write(app_dir, "both_names.py", HELLO + "\napp = None\n")
    assert call(load_app("both_names"))[1] == b"hello from application"


def test_module_alone_falls_back_to_app(app_dir: Path) -> None:
    write(app_dir, "only_app.py", HELLO.replace("def application", "def app"))
    assert call(load_app("only_app"))[1] == b"hello from application"


def test_factory_without_arguments(app_dir: Path) -> None:
    write(app_dir, "fact0.py", HELLO + "\ndef create():\n    return application\n")
    assert call(load_app("fact0:create()"))[1] == b"hello from application"


def test_factory_with_literal_arguments(app_dir: Path) -> None:
    write(
        app_dir,
        "fact1.py",
        """
        def create(name, n=0, *, opts=None):
            def app(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [repr((name, n, opts)).encode()]
            return app
        """,
    )
    app = load_app("fact1:create('x:y', n=3, opts={'a': [1, (2, None)]})")
    assert call(app)[1] == repr(("x:y", 3, {"a": [1, (2, None)]})).encode()


def test_file_path_alone_and_with_attr(app_dir: Path) -> None:
    write(app_dir, "examples/helper_mod.py", "GREETING = b'sibling import works'\n")
    write(
        app_dir,
        "examples/hello_file.py",
        """
        from helper_mod import GREETING

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [GREETING]
        """,
    )
    assert call(load_app("examples/hello_file.py"))[1] == b"sibling import works"
    assert call(load_app("examples/hello_file.py:app"))[1] == b"sibling import works"


def test_file_path_name_clash_with_imported_module(app_dir: Path) -> None:
    write(app_dir, "examples/json.py", HELLO)
    assert "clashes" in str(load_error("examples/json.py"))


def test_chdir_then_cwd_importable(app_dir: Path) -> None:
    write(app_dir, "project/in_project.py", HELLO)
    assert call(load_app("in_project", chdir=str(app_dir / "project")))[0] == "200 OK"
    assert os.getcwd() == str(app_dir / "project")


def test_pythonpath_entries_are_prepended_in_order(app_dir: Path) -> None:
    write(app_dir, "first/shadowed.py", HELLO)
    write(app_dir, "second/shadowed.py", "application = 'wrong one'\n")
    app = load_app("shadowed", pythonpath=["first", str(app_dir / "second")])
    assert callable(app)
    assert sys.path[:3] == [str(app_dir / "first"), str(app_dir / "second"), str(app_dir)]


def test_prepare_import_path_is_idempotent(app_dir: Path) -> None:
    prepare_import_path(None, ["lib"])
    prepare_import_path(None, ["lib"])
    assert sys.path.count(str(app_dir / "lib")) == 1
    assert sys.path.count(str(app_dir)) == 1


# -- errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "missing the module"),
        (":app", "missing the module"),
        ("some-module:app", "is not a module"),
        ("mod:", "nothing after ':'"),
        ("mod:create(", "cannot parse"),
        ("mod:1 + 2", "expected 'attr'"),
        ("mod:x[0]", "expected 'attr'"),
        ("mod:create(os.environ)", "must be literals"),
        ("mod:create(1 + x)", "must be literals"),
        ("mod:create(*args)", "'*' and '**' are not allowed"),
        ("mod:create(**kw)", "'*' and '**' are not allowed"),
        ("mod:create()()", "expected 'attr'"),
    ],
)
def test_invalid_specs(spec: str, fragment: str) -> None:
    with pytest.raises(AppLoadError) as info:
        parse_spec(spec)
    assert fragment in str(info.value)


def test_module_not_found(app_dir: Path) -> None:
    error = load_error("no_such_module_xyz:app")
    assert str(error).startswith("module 'no_such_module_xyz' not found")
    assert error.user_traceback == ""


def test_submodule_not_found(app_dir: Path) -> None:
    write(app_dir, "pkg_b/__init__.py", "")
    assert str(load_error("pkg_b.missing:app")).startswith("module 'pkg_b.missing' not found")


def test_import_error_inside_user_module_is_not_module_not_found(app_dir: Path) -> None:
    write(app_dir, "imports_missing.py", "import requests_that_do_not_exist\n")
    error = load_error("imports_missing:app")
    assert str(error) == (
        "error while importing 'imports_missing': "
        "ModuleNotFoundError: No module named 'requests_that_do_not_exist'"
    )
    assert "imports_missing.py" in error.user_traceback


def test_missing_attribute(app_dir: Path) -> None:
    write(app_dir, "has_no_y.py", HELLO)
    assert str(load_error("has_no_y:y")) == "module 'has_no_y' has no attribute 'y'"


def test_missing_inner_attribute(app_dir: Path) -> None:
    write(app_dir, "has_holder.py", "class Holder:\n    pass\n")
    assert str(load_error("has_holder:Holder.app")) == "object 'Holder' has no attribute 'app'"


def test_module_without_default_names(app_dir: Path) -> None:
    write(app_dir, "no_defaults.py", "x = 1\n")
    message = str(load_error("no_defaults"))
    assert "has no attribute 'application' or 'app'" in message


def test_not_callable(app_dir: Path) -> None:
    write(app_dir, "not_callable.py", "app = 3\n")
    assert "is not callable (got int)" in str(load_error("not_callable:app"))


def test_factory_result_not_callable(app_dir: Path) -> None:
    write(app_dir, "bad_factory.py", "def create():\n    return None\n")
    assert "is not callable (got NoneType)" in str(load_error("bad_factory:create()"))


def test_factory_not_callable(app_dir: Path) -> None:
    write(app_dir, "factory_value.py", "create = 3\n")
    assert "factory" in str(load_error("factory_value:create()"))


def test_factory_raised(app_dir: Path) -> None:
    write(
        app_dir,
        "raising_factory.py",
        """
        def create(n):
            raise ValueError(f"bad n={n}")
        """,
    )
    error = load_error("raising_factory:create(5)")
    assert str(error) == (
        "application factory 'raising_factory:create(5)' failed: ValueError: bad n=5"
    )
    assert 'raise ValueError(f"bad n={n}")' in error.user_traceback


def test_factory_with_wrong_arguments(app_dir: Path) -> None:
    write(app_dir, "arity.py", "def create():\n    return None\n")
    assert "TypeError" in str(load_error("arity:create(1)"))


def test_syntax_error_in_user_code(app_dir: Path) -> None:
    path = write(app_dir, "broken_syntax.py", "x = 1\ndef app(:\n    pass\n")
    error = load_error("broken_syntax:app")
    assert str(error).startswith(f"syntax error in {path}, line 2: ")
    assert "SyntaxError" in error.user_traceback
    assert "def app(:" in error.user_traceback


def test_syntax_error_in_file_path_app(app_dir: Path) -> None:
    write(app_dir, "examples/broken_file.py", "def app(:\n")
    assert str(load_error("examples/broken_file.py")).startswith("syntax error in ")
    assert "broken_file" not in sys.modules


def test_missing_file(app_dir: Path) -> None:
    assert str(load_error("examples/nope.py")) == "application file 'examples/nope.py' not found"


def test_system_exit_during_import(app_dir: Path) -> None:
    write(app_dir, "exits.py", "import sys\nsys.exit(3)\n")
    assert str(load_error("exits")) == "error while importing 'exits': SystemExit: 3"


def test_bad_chdir(app_dir: Path) -> None:
    assert "cannot change directory" in str(load_error("x", chdir=str(app_dir / "absent")))


# -- traceback stripping ---------------------------------------------------


def test_user_traceback_keeps_only_user_frames(app_dir: Path) -> None:
    write(app_dir, "deep_helper.py", "def fail():\n    raise KeyError('deep')\n")
    write(app_dir, "deep_app.py", "import deep_helper\n\ndeep_helper.fail()\n")
    error = load_error("deep_app:app")
    trace = error.user_traceback
    assert trace.startswith("Traceback (most recent call last):")
    assert "deep_app.py" in trace and "deep_helper.py" in trace
    assert trace.rstrip().endswith("KeyError: 'deep'")
    assert "importlib" not in trace
    assert os.path.join("porch", "wsgi") not in trace
    assert "loader.py" not in trace


def test_user_traceback_strips_chained_exceptions(app_dir: Path) -> None:
    write(
        app_dir,
        "chained.py",
        """
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("while configuring") from exc
        """,
    )
    trace = load_error("chained").user_traceback
    assert "KeyError: 'missing'" in trace
    assert "direct cause" in trace
    assert "RuntimeError: while configuring" in trace
    assert "importlib" not in trace and "loader.py" not in trace


def test_nested_import_error_traceback(app_dir: Path) -> None:
    write(app_dir, "pkg_c/__init__.py", "from . import inner\n")
    write(app_dir, "pkg_c/inner.py", "raise OSError('cannot read config')\n")
    error = load_error("pkg_c:app")
    assert str(error) == "error while importing 'pkg_c': OSError: cannot read config"
    trace = error.user_traceback
    assert "pkg_c/__init__.py" in trace and "pkg_c/inner.py" in trace
    assert "_bootstrap" not in trace
