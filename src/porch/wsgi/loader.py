"""Turn an application spec (``module:attr``, ``module:factory(...)``, a file path) into a WSGI app.

Accepted forms::

    module                    looks for ``application``, then ``app``
    module:attr               attribute of the module
    pkg.module:attr.inner     dotted attribute path
    module:factory()          call a factory with literal arguments only
    module:factory('x', n=3)
    path/to/app.py            a file (its directory becomes importable)
    path/to/app.py:app

Every failure raises ``AppLoadError`` with a one-line message; when the user's
code raised, ``user_traceback`` carries that traceback without porch's or
importlib's frames.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from porch.errors import AppLoadError
from porch.types import WSGIApp

__all__ = ["AppSpec", "load_app", "parse_spec", "prepare_import_path"]

_DEFAULT_NAMES = ("application", "app")
_PORCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed application spec."""

    module: str  # dotted module name, or a file path when ``is_file``
    is_file: bool
    attrs: tuple[str, ...]  # empty: look up the default names
    call_args: tuple[Any, ...] | None  # None: not a factory call
    call_kwargs: dict[str, Any]


def prepare_import_path(chdir: str | None = None, pythonpath: Sequence[str] = ()) -> None:
    """Apply ``chdir``, then put ``pythonpath`` entries and the cwd first on ``sys.path``.

    Like gunicorn, the current directory is importable. Relative ``pythonpath``
    entries are resolved after ``chdir``. Calling this twice is harmless.
    """
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppLoadError(f"cannot change directory to {chdir!r}: {exc.strerror}") from None
    front = [os.path.abspath(entry) for entry in pythonpath]
    front.append(os.getcwd())
    _prepend_sys_path(front)


def _prepend_sys_path(entries: Sequence[str]) -> None:
    unique = list(dict.fromkeys(entries))
    rest = [entry for entry in sys.path if entry not in unique]
    sys.path[:] = [*unique, *rest]


def load_app(spec: str, *, chdir: str | None = None, pythonpath: Sequence[str] = ()) -> WSGIApp:
    """Import and return the WSGI application named by ``spec``; raise ``AppLoadError``."""
    prepare_import_path(chdir, pythonpath)
    parsed = parse_spec(spec)
    importlib.invalidate_caches()  # files may have appeared since the last import
    module = _import_file(parsed.module) if parsed.is_file else _import_module(parsed.module)
    target = _resolve_attrs(module, parsed.attrs) if parsed.attrs else _resolve_default(module)
    if parsed.call_args is not None:
        target = _call_factory(spec, target, parsed.call_args, parsed.call_kwargs)
    if not callable(target):
        raise AppLoadError(
            f"application {spec!r} is not callable (got {type(target).__name__}); "
            "a WSGI app must be callable as app(environ, start_response)"
        )
    return cast(WSGIApp, target)


def parse_spec(spec: str) -> AppSpec:
    """Split ``spec`` into module (or file), attribute path and literal factory arguments."""
    text = spec.strip()
    # Module names and paths rarely contain ':'; factory arguments may, so split once.
    module_part, sep, object_part = text.partition(":")
    if not module_part:
        raise AppLoadError(f"invalid application spec {spec!r}: missing the module")
    is_file = module_part.endswith(".py") or "/" in module_part or os.sep in module_part
    if not is_file and not all(part.isidentifier() for part in module_part.split(".")):
        raise AppLoadError(f"invalid application spec {spec!r}: {module_part!r} is not a module")
    if not sep:
        return AppSpec(module_part, is_file, (), None, {})
    if not object_part.strip():
        raise AppLoadError(f"invalid application spec {spec!r}: nothing after ':'")
    attrs, args, kwargs = _parse_object_path(spec, object_part.strip())
    return AppSpec(module_part, is_file, attrs, args, kwargs)


def _parse_object_path(
    spec: str, text: str
) -> tuple[tuple[str, ...], tuple[Any, ...] | None, dict[str, Any]]:
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid application spec {spec!r}: cannot parse {text!r}") from None
    if not isinstance(node, ast.Call):
        return _attr_chain(spec, node), None, {}
    attrs = _attr_chain(spec, node.func)
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
        kw.arg is None for kw in node.keywords
    ):
        raise AppLoadError(f"invalid application spec {spec!r}: '*' and '**' are not allowed")
    try:
        args = tuple(ast.literal_eval(arg) for arg in node.args)
        kwargs = {str(kw.arg): ast.literal_eval(kw.value) for kw in node.keywords}
    except ValueError:
        raise AppLoadError(
            f"invalid application spec {spec!r}: factory arguments must be literals "
            "(strings, numbers, tuples, lists, dicts, True/False/None)"
        ) from None
    return attrs, args, kwargs


def _attr_chain(spec: str, node: ast.expr) -> tuple[str, ...]:
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppLoadError(
            f"invalid application spec {spec!r}: expected 'attr', 'attr.inner' or 'factory(...)'"
        )
    names.append(node.id)
    return tuple(reversed(names))


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Distinguish "the named module does not exist" from a missing import
        # inside the user's module: only the former names one of our prefixes.
        prefixes = {".".join(name.split(".")[: i + 1]) for i in range(name.count(".") + 1)}
        if exc.name in prefixes:
            raise AppLoadError(
                f"module {name!r} not found (searched the current directory and sys.path)"
            ) from None
        raise _user_error(f"error while importing {name!r}", exc) from None
    except SyntaxError as exc:
        raise _syntax_error(name, exc) from None
    except (Exception, SystemExit) as exc:
        raise _user_error(f"error while importing {name!r}", exc) from None


def _import_file(path: str) -> ModuleType:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise AppLoadError(f"application file {path!r} not found")
    name = os.path.splitext(os.path.basename(full))[0]
    if not name.isidentifier():
        raise AppLoadError(f"application file {path!r}: {name!r} is not a valid module name")
    existing = sys.modules.get(name)
    if existing is not None:
        if os.path.abspath(getattr(existing, "__file__", "") or "") == full:
            return existing
        raise AppLoadError(
            f"application file {path!r}: module name {name!r} clashes with an imported module"
        )
    # Like `python path/to/app.py`: the file's directory is importable.
    _prepend_sys_path([os.path.dirname(full)])
    file_spec = importlib.util.spec_from_file_location(name, full)
    if file_spec is None or file_spec.loader is None:
        raise AppLoadError(f"application file {path!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    try:
        file_spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise _syntax_error(path, exc) from None
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise _user_error(f"error while importing {path!r}", exc) from None
    return module


def _resolve_attrs(module: ModuleType, attrs: tuple[str, ...]) -> object:
    target: object = module
    for depth, attr in enumerate(attrs):
        try:
            target = getattr(target, attr)
        except AttributeError:
            owner = module.__name__ if depth == 0 else ".".join(attrs[:depth])
            kind = "module" if depth == 0 else "object"
            raise AppLoadError(f"{kind} {owner!r} has no attribute {attr!r}") from None
        except Exception as exc:
            raise _user_error(f"error while looking up {'.'.join(attrs)!r}", exc) from None
    return target


def _resolve_default(module: ModuleType) -> object:
    for name in _DEFAULT_NAMES:
        if hasattr(module, name):
            return getattr(module, name)
    raise AppLoadError(
        f"module {module.__name__!r} has no attribute 'application' or 'app'; "
        f"name the app explicitly, e.g. '{module.__name__}:my_app'"
    )


def _call_factory(
    spec: str, factory: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> object:
    if not callable(factory):
        raise AppLoadError(f"application factory in {spec!r} is not callable")
    try:
        return factory(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        raise _user_error(f"application factory {spec!r} failed", exc) from None


def _user_error(what: str, exc: BaseException) -> AppLoadError:
    detail = traceback.format_exception_only(exc)[-1].strip()
    return AppLoadError(f"{what}: {detail}", user_traceback=format_user_traceback(exc))


def _syntax_error(where: str, exc: SyntaxError) -> AppLoadError:
    location = f"{exc.filename}, line {exc.lineno}" if exc.filename else where
    return AppLoadError(
        f"syntax error in {location}: {exc.msg}",
        user_traceback=format_user_traceback(exc),
    )


def format_user_traceback(exc: BaseException) -> str:
    """Format ``exc`` (with its chain) keeping only frames outside porch and importlib."""
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending = [te]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kept = [frame for frame in current.stack if _is_user_frame(frame.filename)]
        current.stack = traceback.StackSummary.from_list(kept)
        pending.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return "".join(te.format())


def _is_user_frame(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return False
    path = os.path.abspath(filename)
    return not (path.startswith(_PORCH_DIR + os.sep) or path.startswith(_IMPORTLIB_DIR + os.sep))
