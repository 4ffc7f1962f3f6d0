"""create_listeners: every bind form, UNIX socket files, fd://N, systemd LISTEN_FDS, errors."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.under_test import PORCH_PATH

from porch.errors import BindError
from porch.supervisor.sockets import Listener, create_listeners, parse_tcp_bind

SRC = PORCH_PATH


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")


@pytest.fixture
def opened() -> Iterator[list[Listener]]:
    """Listeners a test created; closed afterwards."""
    listeners: list[Listener] = []
    yield listeners
    for listener in listeners:
        listener.close()


def make(opened: list[Listener], *binds: str, mode: int | None = None) -> list[Listener]:
    environ: dict[str, str] = {}
    listeners = create_listeners(binds, backlog=16, socket_mode=mode, environ=environ)
    opened.extend(listeners)
    return listeners


def roundtrip(listener: Listener) -> None:
    """A client connects and the listening socket accepts it."""
    sock = listener.sock
    client = socket.socket(sock.family, socket.SOCK_STREAM)
    client.settimeout(5)
    try:
        client.connect(sock.getsockname())
        sock.settimeout(5)
        conn, _ = sock.accept()
        conn.close()
    finally:
        client.close()
        sock.setblocking(False)


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:8001", ("127.0.0.1", 8001)),
        ("localhost:0", ("localhost", 0)),
        (":9000", ("0.0.0.0", 9000)),
        ("example.org", ("example.org", 8000)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]", ("::", 8000)),
        ("tcp://127.0.0.1:1", ("127.0.0.1", 1)),
        ("http://127.0.0.1:2", ("127.0.0.1", 2)),
    ],
)
def test_parse_tcp_bind(bind: str, expected: tuple[str, int]) -> None:
    assert parse_tcp_bind(bind) == expected


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("::1:8000", "IPv6 addresses need brackets"),
        ("[::1", r"expected \[IPV6\]:PORT"),
        ("[::1]8000", r"expected \[IPV6\]:PORT"),
        ("127.0.0.1:http", "the port must be a number"),
        ("127.0.0.1:70000", "the port must be a number"),
        ("[]:80", "empty host"),
    ],
)
def test_parse_tcp_bind_rejects(bind: str, message: str) -> None:
    with pytest.raises(BindError, match=message):
        parse_tcp_bind(bind)


# --- TCP --------------------------------------------------------------------------------


def test_ipv4_ephemeral_port_is_reported(opened: list[Listener]) -> None:
    (listener,) = make(opened, "127.0.0.1:0")
    port = listener.sock.getsockname()[1]
    assert port != 0
    assert listener.name == f"http://127.0.0.1:{port}"
    assert listener.unix_path is None
    roundtrip(listener)


def test_sockets_are_nonblocking_inheritable_and_reuseaddr(opened: list[Listener]) -> None:
    (listener,) = make(opened, "127.0.0.1:0")
    sock = listener.sock
    assert sock.getblocking() is False
    assert sock.get_inheritable() is True
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def test_colon_port_binds_all_ipv4_interfaces(opened: list[Listener]) -> None:
    (listener,) = make(opened, ":0")
    assert listener.sock.getsockname()[0] == "0.0.0.0"
    assert listener.name.startswith("http://0.0.0.0:")


def test_hostname_is_resolved(opened: list[Listener]) -> None:
    (listener,) = make(opened, "localhost:0")
    assert listener.sock.family in (socket.AF_INET, socket.AF_INET6)
    roundtrip(listener)


@needs_ipv6
def test_ipv6_loopback(opened: list[Listener]) -> None:
    (listener,) = make(opened, "[::1]:0")
    port = listener.sock.getsockname()[1]
    assert listener.name == f"http://[::1]:{port}"
    assert listener.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    roundtrip(listener)


@needs_ipv6
def test_ipv6_any_and_ipv4_any_coexist_on_one_port(opened: list[Listener]) -> None:
    (v6,) = make(opened, "[::]:0")
    port = v6.sock.getsockname()[1]
    (v4,) = make(opened, f"0.0.0.0:{port}")
    assert v4.sock.getsockname() == ("0.0.0.0", port)


def test_several_binds_at_once(opened: list[Listener], tmp_path: Path) -> None:
    listeners = make(opened, "127.0.0.1:0", f"unix:{tmp_path / 's.sock'}")
    assert [listener.sock.family for listener in listeners] == [socket.AF_INET, socket.AF_UNIX]


def test_address_in_use(opened: list[Listener]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(
            BindError, match=rf"^cannot bind 127.0.0.1:{port}: address already in use$"
        ):
            make(opened, f"127.0.0.1:{port}")


def test_failure_closes_the_listeners_already_made(tmp_path: Path) -> None:
    path = tmp_path / "first.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(BindError):
            create_listeners([f"unix:{path}", f"127.0.0.1:{port}"], backlog=1,
                             socket_mode=None, environ={})  # fmt: skip
    assert not path.exists()


def test_address_not_available(opened: list[Listener]) -> None:
    with pytest.raises(
        BindError, match=re.escape("cannot bind 192.0.2.1:0: address not available")
    ):
        make(opened, "192.0.2.1:0")  # TEST-NET-1: never a local address


def test_unresolvable_host(opened: list[Listener]) -> None:
    with pytest.raises(
        BindError, match=re.escape("cannot bind no-such-host.invalid:80: cannot resolve")
    ):
        make(opened, "no-such-host.invalid:80")


def test_privileged_port_permission_denied() -> None:
    """An unprivileged process cannot bind port 80 (a forked child drops to 'nobody' as root)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as handle:
            if int(handle.read()) <= 80:
                pytest.skip("unprivileged users may bind port 80 on this host")
    except OSError:
        pass
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        message = "bound"
        try:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            create_listeners(["127.0.0.1:80"], backlog=1, socket_mode=None, environ={})
        except BindError as exc:
            message = str(exc)
        except BaseException as exc:
            message = repr(exc)
        finally:
            os.write(write_fd, message.encode())
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    assert message == "cannot bind 127.0.0.1:80: permission denied"


# --- UNIX ---------------------------------------------------------------------------------


def test_unix_socket_with_mode(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "porch.sock"
    (listener,) = make(opened, f"unix:{path}", mode=0o660)
    assert listener.name == f"unix:{path}"
    assert listener.unix_path == str(path)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    roundtrip(listener)
    listener.close()
    assert not path.exists()


def test_unix_socket_mode_is_exact_whatever_the_umask(
    opened: list[Listener], tmp_path: Path
) -> None:
    path = tmp_path / "open.sock"
    old = os.umask(0o077)
    try:
        make(opened, f"unix:{path}", mode=0o666)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666


def test_stale_unix_socket_is_replaced(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    (listener,) = make(opened, f"unix:{path}")
    roundtrip(listener)


def test_live_unix_socket_is_not_stolen(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen(1)
        with pytest.raises(BindError, match="address already in use"):
            make(opened, f"unix:{path}")
        assert path.exists()


def test_unix_path_that_is_not_a_socket(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "regular-file"
    path.write_text("keep me")
    with pytest.raises(BindError, match="exists and is not a socket"):
        make(opened, f"unix:{path}")
    assert path.read_text() == "keep me"


def test_unix_socket_in_missing_directory(opened: list[Listener], tmp_path: Path) -> None:
    with pytest.raises(BindError, match="no such file or directory"):
        make(opened, f"unix:{tmp_path / 'missing' / 'x.sock'}")


def test_empty_unix_path(opened: list[Listener]) -> None:
    with pytest.raises(BindError, match="expected unix:/path"):
        make(opened, "unix:")


# --- fd://N -------------------------------------------------------------------------------


def test_inherited_fd(opened: list[Listener]) -> None:
    with socket.socket() as original:
        original.bind(("127.0.0.1", 0))
        original.listen(4)
        fd = os.dup(original.fileno())
    (listener,) = make(opened, f"fd://{fd}")
    assert listener.sock.fileno() == fd
    assert listener.name.startswith("http://127.0.0.1:")
    roundtrip(listener)


def test_fd_not_listening_is_rejected(opened: list[Listener]) -> None:
    with socket.socket() as sock:
        with pytest.raises(BindError, match=rf"cannot use fd://{sock.fileno()}: not a listening"):
            make(opened, f"fd://{sock.fileno()}")
        sock.getsockname()  # still open: porch does not close what it was refused


def test_fd_datagram_is_rejected(opened: list[Listener]) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        pytest.raises(BindError, match="not a stream socket"),
    ):
        make(opened, f"fd://{sock.fileno()}")


def test_fd_that_is_not_a_socket(opened: list[Listener], tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as handle, pytest.raises(BindError, match="not a socket"):
        make(opened, f"fd://{handle.fileno()}")


def test_bad_fd(opened: list[Listener]) -> None:
    with pytest.raises(BindError, match="cannot use fd://999: bad file descriptor"):
        make(opened, "fd://999")
    with pytest.raises(BindError, match="expected fd://N"):
        make(opened, "fd://three")


# --- systemd socket activation ------------------------------------------------------------

_SYSTEMD_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from porch.supervisor.sockets import create_listeners
    os.dup2(int(sys.argv[1]), 3)
    os.environ["LISTEN_PID"] = sys.argv[2] or str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_FDNAMES"] = "web"
    listeners = create_listeners(["127.0.0.1:0"], backlog=1, socket_mode=None,
                                 environ=os.environ)
    print(json.dumps({
        "names": [listener.name for listener in listeners],
        "fds": [listener.sock.fileno() for listener in listeners],
        "left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    }))
    """
)


def _run_systemd_child(sock: socket.socket, listen_pid: str) -> dict[str, list[object]]:
    import json

    out = subprocess.run(
        [sys.executable, "-c", _SYSTEMD_CHILD, str(sock.fileno()), listen_pid],
        env={**os.environ, "PYTHONPATH": SRC}, pass_fds=[sock.fileno()],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    result: dict[str, list[object]] = json.loads(out.stdout)
    return result


def test_systemd_listen_fds_replace_the_binds() -> None:
    with socket.socket() as passed:
        passed.bind(("127.0.0.1", 0))
        passed.listen(1)
        port = passed.getsockname()[1]
        result = _run_systemd_child(passed, "")
    assert result == {"names": [f"http://127.0.0.1:{port}"], "fds": [3], "left": []}


def test_systemd_vars_for_another_process_are_ignored() -> None:
    with socket.socket() as passed:
        passed.bind(("127.0.0.1", 0))
        passed.listen(1)
        result = _run_systemd_child(passed, "1")  # pid 1 is not us
    assert result["fds"] != [3]
    assert result["left"] == ["LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID"]
