"""The --static settings: accepted forms, normalisation, and errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from porch.config import load_config
from porch.config.settings import Config
from porch.errors import ConfigError


def config(*argv: str, environ: dict[str, str] | None = None) -> Config:
    return load_config([*argv, "app:app"], environ or {}).config


def error(*argv: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config([*argv, "app:app"], environ or {})
    return str(info.value)


def test_defaults() -> None:
    default = config()
    assert default.static == ()
    assert default.static_follow_symlinks is False
    assert default.static_cache_control == "public, max-age=3600"
    assert default.static_index == ""


def test_static_is_repeatable_and_normalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "public").mkdir()
    monkeypatch.chdir(tmp_path)
    loaded = config("--static", "/assets/=./public", "--static", "/=.", "--static", "/a/b=public")
    assert loaded.static == (
        f"/assets={tmp_path / 'public'}",
        f"/={tmp_path}",
        f"/a/b={tmp_path / 'public'}",
    )


def test_static_from_env_and_file(tmp_path: Path) -> None:
    environ = {"PORCH_STATIC": f"/x={tmp_path},/y={tmp_path}"}
    assert config(environ=environ).static == (f"/x={tmp_path}", f"/y={tmp_path}")
    toml = tmp_path / "porch.toml"
    toml.write_text(f'static = ["/assets={tmp_path}"]\nstatic-index = "index.html"\n')
    loaded = config("-c", str(toml))
    assert loaded.static == (f"/assets={tmp_path}",)
    assert loaded.static_index == "index.html"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("assets={dir}", "--static: the URL prefix must start with '/'"),
        ("/assets", "--static: expected URL_PREFIX=DIRECTORY"),
        ("/assets=", "--static: expected URL_PREFIX=DIRECTORY"),
        ("={dir}", "--static: expected URL_PREFIX=DIRECTORY"),
        ("/assets={dir}/missing", "--static: '{dir}/missing' is not an existing directory"),
        ("/assets={dir}/file.txt", "--static: '{dir}/file.txt' is not an existing directory"),
        ("/a/../b={dir}", "--static: the URL prefix must be a plain path"),
        ("/a/./b={dir}", "--static: the URL prefix must be a plain path"),
        ("/a//b={dir}", "--static: the URL prefix must be a plain path"),
        ("/a%2fb={dir}", "--static: the URL prefix must be a plain path"),
        ("/a\\b={dir}", "--static: the URL prefix must be a plain path"),
    ],
)
def test_invalid_static_names_the_flag(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    text = error("--static", value.format(dir=tmp_path))
    assert text.startswith(message.format(dir=tmp_path)), text


def test_duplicate_prefix_is_an_error(tmp_path: Path) -> None:
    text = error("--static", f"/a={tmp_path}", "--static", f"/a/={tmp_path}")
    assert text == "--static: URL prefix given twice: /a"


def test_invalid_static_in_env_and_file_names_them(tmp_path: Path) -> None:
    assert error(environ={"PORCH_STATIC": "/a=/nonexistent-dir"}).startswith("PORCH_STATIC: ")
    toml = tmp_path / "porch.toml"
    toml.write_text('static = ["nope"]\n')
    assert "line 1: static: expected URL_PREFIX=DIRECTORY" in error("-c", str(toml))


@pytest.mark.parametrize("name", ["index.html", "default.htm", "index", ""])
def test_static_index_accepts_file_names(name: str) -> None:
    assert config("--static-index", name).static_index == name


@pytest.mark.parametrize("name", ["../index.html", "a/index.html", ".index", "..", "a\\b", "x\x00"])
def test_static_index_refuses_paths_and_dotfiles(name: str) -> None:
    assert error("--static-index", name).startswith("--static-index: expected a file name")


def test_static_cache_control_refuses_header_injection() -> None:
    assert config("--static-cache-control", "").static_cache_control == ""
    for value in ("a\r\nSet-Cookie: x=1", "a\nb", "x\x00", " leading"):
        assert error("--static-cache-control", value).startswith("--static-cache-control: ")


def test_follow_symlinks_flag() -> None:
    assert config("--static-follow-symlinks").static_follow_symlinks is True
    assert config("--no-static-follow-symlinks").static_follow_symlinks is False
    environ = {"PORCH_STATIC_FOLLOW_SYMLINKS": "yes"}
    assert config(environ=environ).static_follow_symlinks is True
