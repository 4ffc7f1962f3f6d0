"""The master process: listeners, spawning and reaping workers, signals, heartbeats, HUP reload.

Signals are queued by a tiny handler and a self-pipe wakes the loop; each one is
handled by its ``handle_<name>`` method in the loop, never inside the handler.

Workers belong to a *generation*. The first worker of a generation boots alone
(the canary): if the app cannot be imported, exactly one worker says so and the
master stops at start-up, or keeps the old generation during a reload. Once the
canary serves, the rest of the generation is forked; once all of them serve, the
previous generation is sent TERM.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Callable

from porch import build_name
from porch.config.settings import MAX_WORKERS, Config
from porch.errors import AppLoadError, BindError, ConfigError, ExitCode, PorchError
from porch.ipc import WorkerChannel
from porch.log import chown_log_files, reopen_log_files, setup_logging
from porch.supervisor.health import (
    backoff_seconds,
    exit_verdict,
    over_memory,
    overdue_workers,
    silent_workers,
)
from porch.supervisor.pidfile import remove_pidfile, write_pidfile
from porch.supervisor.privileges import drop_privileges, resolve_ids
from porch.supervisor.reloader import SourceReloader, require_watchfiles, watch_roots
from porch.supervisor.signals import SignalQueue
from porch.supervisor.sockets import Listener, create_listeners
from porch.supervisor.workers import (
    STOP_MARGIN_SECONDS,
    Worker,
    WorkerTable,
    describe_status,
    read_rss_bytes,
)
from porch.types import WSGIApp

__all__ = ["Arbiter", "WorkerMain"]

# Called in the child as worker_main(config=, listeners=, app=, channel=, worker_id=).
WorkerMain = Callable[..., object]
SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGINT, signal.SIGTERM, signal.SIGTTIN,
           signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD)  # fmt: skip
TICK_SECONDS = 0.5  # heartbeat and deadline checks
HEARTBEAT_MARGIN_SECONDS = 2.0  # on top of --timeout
ABORT_GRACE_SECONDS = 1.0  # SIGABRT (stack dump) -> SIGKILL
FAST_STOP_SECONDS = 3.0  # INT/QUIT -> SIGKILL
UNKILLABLE_SECONDS = 10.0  # after the stop deadline, before the master leaves anyway
MEMORY_CHECK_SECONDS = 3.0
BOOT_FAILURE_LIMIT = 5  # consecutive early deaths of a new generation's first worker
# Settings a HUP cannot change: they shape the listening sockets or the master.
RESTART_ONLY = ("bind", "backlog", "socket_mode", "user", "group", "preload", "reload")


class Arbiter:
    """The porch master. ``run()`` returns the process exit code."""

    def __init__(
        self,
        config: Config,
        *,
        reload_config: Callable[[], Config] | None = None,
        worker_main: WorkerMain | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self._worker_main = worker_main
        self._log = logging.getLogger("porch.error")
        self._app: WSGIApp | None = None
        self._app_dir: str | None = None  # the preloaded app's working directory
        self._ids: tuple[int | None, int | None] = (None, None)
        self._listeners: list[Listener] = []
        self._pidfile: str | None = None
        self._reloader: SourceReloader | None = None
        self._signals = SignalQueue(SIGNALS)
        self._workers = WorkerTable(signals=SIGNALS)
        self._num_workers = config.workers
        self._generation = 1
        self._next_generation = 2
        self._proven = False  # a worker of the current generation became ready
        self._stable: tuple[int, Config, int] | None = None  # generation, config, workers
        self._failures = 0
        self._next_spawn_at = 0.0
        self._next_memory_check = 0.0
        self._stop_signal: int | None = None
        self._exit_code: int = ExitCode.OK

    # --- life cycle -------------------------------------------------------------

    def run(self) -> int:
        """Bind, fork the workers and supervise them until told to stop."""
        try:
            try:
                self._setup()
            except AppLoadError as exc:
                tb = f"\n{exc.user_traceback.rstrip()}" if exc.user_traceback else ""
                self._log.error("Failed to load the application: %s%s", exc, tb)
                return ExitCode.APP_LOAD_ERROR
            except BindError as exc:
                self._log.error("%s", exc)
                return ExitCode.ERROR
            except ConfigError as exc:
                self._log.error("%s", exc)
                return ExitCode.USAGE
            try:
                self._serve()
            except Exception:
                self._log.exception("Unhandled error in the master; stopping")
                self._exit_code = ExitCode.ERROR
            return self._exit_code
        finally:
            self._cleanup()

    def _setup(self) -> None:
        config = self.config
        os.umask(config.umask)
        self._log.info("Starting %s", build_name())
        self._ids = resolve_ids(config.user, config.group)
        chown_log_files(*self._ids)  # so that the workers can reopen them on USR1
        if config.reload:
            require_watchfiles()
        if not config.request_buffering and config.threads == 1:
            self._log.warning(
                "--no-request-buffering with --threads 1: the app reads request bodies on the "
                "event loop, so one slow upload holds its whole worker (see docs/deployment.md)"
            )
        if config.request_queue and config.threads == 1:
            self._log.warning(
                "--request-queue has no effect with --threads 1: the app runs on the event "
                "loop, with no thread pool to queue for (--worker-connections and "
                "--rate-limit still bound the load)"
            )
        if config.preload and config.reload:
            self._log.warning("--reload ignores --preload: workers import the app themselves")
        elif config.preload:
            self._preload(config)
        if self._worker_main is None:
            from porch.worker.process import run_worker

            self._worker_main = run_worker
        self._set_pidfile(config.pid)  # first: a running porch's file is not taken over
        self._listeners = create_listeners(
            config.bind, backlog=config.backlog, socket_mode=config.socket_mode,
            environ=os.environ, owner=self._ids,
        )  # fmt: skip
        for listener in self._listeners:
            self._log.info("Listening at: %s (%d)", listener.name, os.getpid())
        self._signals.install()
        if config.reload:
            roots = watch_roots(config.app, config.chdir, config.pythonpath)
            self._reloader = SourceReloader(roots=roots, on_change=self._on_source_change)
            self._reloader.start()

    def _preload(self, config: Config) -> None:
        """--preload: import the app here, in ``--chdir``, then go back where porch started.

        ``--chdir`` is the app's working directory: the workers change into it when
        forked. The master stays in the directory it was started in, so that the
        relative paths it opens later (HUP's ``-c`` file, ``--pid``, the log files,
        UNIX sockets) mean what they meant when porch started.
        """
        from porch.wsgi.loader import load_app

        start_dir = os.getcwd()
        try:
            self._app = load_app(config.app or "", chdir=config.chdir,
                                 pythonpath=config.pythonpath)  # fmt: skip
            self._app_dir = os.getcwd()
        except KeyboardInterrupt:  # Ctrl-C (or the app) during the import: it did not load
            raise AppLoadError(
                f"importing {config.app!r} was interrupted (KeyboardInterrupt)"
            ) from None
        finally:
            os.chdir(start_dir)

    def _serve(self) -> None:
        self._manage_workers()
        while self._stop_signal is None:
            self._wait(self._wait_seconds())
            self._dispatch_signals()
            if self._stop_signal is None:
                self._reap()
            if self._stop_signal is None:
                self._maintain()
        self._shutdown()

    def _shutdown(self) -> None:
        """Stop every worker with the stop signal, wait for them, kill the late ones.

        The master closes its listeners first, as gunicorn does: a stopping worker
        accepts what is already queued in the backlog, then closes its own copies, so
        that once all have, new connections are refused rather than left queued.
        """
        assert self._stop_signal is not None
        graceful = self._stop_signal == signal.SIGTERM
        grace = self.config.graceful_timeout if graceful else FAST_STOP_SECONDS
        self._close_listeners()  # the workers keep their copies to drain the backlog
        for worker in self._workers:
            if worker.aborted_at is None:  # an aborted one is dumping its stacks, then dies
                self._workers.stop(worker, self._stop_signal, grace)
        give_up_at = time.monotonic() + grace + UNKILLABLE_SECONDS
        while len(self._workers):
            self._wait(TICK_SECONDS)
            self._dispatch_signals()
            self._reap()
            now = time.monotonic()
            self._enforce_deadlines(now)
            if now > give_up_at:  # stuck in the kernel (D state): do not hang forever
                pids = ", ".join(str(worker.pid) for worker in self._workers)
                self._log.error("Workers %s did not exit even after SIGKILL; leaving them", pids)
                break

    def _cleanup(self) -> None:
        if self._reloader is not None:
            self._reloader.stop()
        self._workers.kill_all()  # none left unless the loop failed
        self._close_listeners()
        self._set_pidfile(None)
        self._signals.restore()
        self._log.info("Shutting down: Master")

    def _close_listeners(self) -> None:
        """Close the master's copies of the listening sockets (and remove UNIX socket files).

        A socket stops listening when the last process holding it closes it: once
        the stopping workers have drained their backlog and closed theirs, a new
        connection is refused at once instead of waiting in a backlog nobody reads.
        """
        for listener in self._listeners:
            listener.close()
        self._listeners = []

    # --- signals and waiting ---------------------------------------------------------

    def _on_source_change(self, paths: list[str]) -> None:
        """Called on the reloader thread: queue a HUP for the loop."""
        shown = ", ".join(os.path.relpath(path) for path in paths[:3])
        self._log.info("Source changed (%s); reloading", shown)
        self._signals.push(signal.SIGHUP)

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal, a worker readiness notice or ``timeout``."""
        if self._signals.pending():
            timeout = 0.0
        poller = select.poll()
        poller.register(self._signals.fileno(), select.POLLIN)
        waiting = {w.channel.ready_fileno(): w for w in self._workers if w.channel.waiting()}
        for fd in waiting:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(timeout * 1000.0):
            if fd == self._signals.fileno():
                self._signals.drain()
            elif waiting[fd].channel.read_ready():
                self._on_ready(waiting[fd])

    def _wait_seconds(self) -> float:
        if self._next_spawn_at > 0.0:
            return max(0.0, min(TICK_SECONDS, self._next_spawn_at - time.monotonic()))
        return TICK_SECONDS

    def _dispatch_signals(self) -> None:
        if self._signals.child_exited:
            self._signals.child_exited = False
            self.handle_chld()
        while (signum := self._signals.pop()) is not None:
            name = signal.Signals(signum).name.removeprefix("SIG").lower()
            self._log.info("Handling signal: %s", name)
            getattr(self, f"handle_{name}")()

    def handle_chld(self) -> None:
        self._reap()

    def handle_term(self) -> None:
        """Graceful stop (the first stop signal wins; INT/QUIT may still speed it up)."""
        if self._stop_signal is None:
            self._stop_signal = signal.SIGTERM

    def handle_int(self) -> None:
        self._fast_stop(signal.SIGINT)

    def handle_quit(self) -> None:
        self._fast_stop(signal.SIGQUIT)

    def _fast_stop(self, signum: int) -> None:
        if self._stop_signal in (None, signal.SIGTERM):
            escalate = self._stop_signal is not None
            self._stop_signal = signum
            for worker in self._workers if escalate else ():
                self._workers.stop(worker, signum, FAST_STOP_SECONDS)
        else:  # a second fast stop: do not wait any longer
            for worker in self._workers:
                self._workers.kill(worker, "a second stop signal")

    def handle_hup(self) -> None:
        if self._stop_signal is None:
            self._start_reload()

    def handle_ttin(self) -> None:
        if self._stop_signal is None and self._num_workers >= MAX_WORKERS:
            self._log.warning("TTIN ignored: already %d workers, the most porch runs",
                              self._num_workers)  # fmt: skip
        elif self._stop_signal is None:
            self._num_workers += 1
            self._log.info("Number of workers: %d", self._num_workers)

    def handle_ttou(self) -> None:
        if self._stop_signal is None and self._num_workers > 1:
            self._num_workers -= 1
            self._log.info("Number of workers: %d", self._num_workers)

    def handle_usr1(self) -> None:
        """Reopen the log files, here and in every worker."""
        reopen_log_files()
        chown_log_files(*self._ids)  # a file created anew, before the workers reopen it
        for worker in self._workers:
            self._workers.send(worker, signal.SIGUSR1)
        self._log.info("Log files reopened; USR1 sent to %d workers", len(self._workers))

    def handle_usr2(self) -> None:
        self._log.warning("USR2 (binary upgrade) is not supported; use HUP to reload")

    # --- workers ------------------------------------------------------------------

    def _manage_workers(self) -> None:
        """Fork missing workers of the current generation; stop the excess ones."""
        if self._stop_signal is not None:
            return
        current = self._workers.running(self._generation)
        target = self._num_workers if self._proven else 1
        if len(current) < target and time.monotonic() >= self._next_spawn_at:
            self._next_spawn_at = 0.0
            for _ in range(target - len(current)):
                if self._signals.pending():  # TERM while forking many: handle it first,
                    return  # the loop comes back here for the rest
                self._spawn_worker()
        excess = len(current) - self._num_workers
        for worker in sorted(current, key=lambda w: w.spawned_at)[: max(0, excess)]:
            self._log.info("Stopping worker %d (%d wanted)", worker.pid, self._num_workers)
            self._workers.stop(worker, signal.SIGTERM, self.config.graceful_timeout)

    def _spawn_worker(self) -> None:
        config, main, app, app_dir = self.config, self._worker_main, self._app, self._app_dir
        assert main is not None
        sockets = [listener.sock for listener in self._listeners]

        def child_main(channel: WorkerChannel, worker_id: int) -> None:
            self._signals.close_pipe()
            self._workers.close_channels()
            channel.close_master_side()
            if app_dir is not None:  # where the preloaded app was imported (--chdir)
                os.chdir(app_dir)
            drop_privileges(*self._ids)
            main(config=config, listeners=sockets, app=app, channel=channel, worker_id=worker_id)

        try:
            worker = self._workers.spawn(child_main, generation=self._generation)
        except OSError as exc:
            self._log.error("Cannot fork a worker: %s", exc)
            self._note_failure()
            return
        self._log.info("Booting worker with pid: %d", worker.pid)

    def _on_ready(self, worker: Worker) -> None:
        worker.ready = True
        self._failures = 0
        if worker.generation == self._generation:
            self._proven = True
        self._log.debug("Worker %d is ready", worker.pid)

    def _reap(self) -> None:
        for worker, status in self._workers.reap():
            self._on_exit(worker, status)

    def _on_exit(self, worker: Worker, status: int) -> None:
        code, how = os.waitstatus_to_exitcode(status), describe_status(status)
        if worker.stop_signal is not None or self._stop_signal is not None:
            self._log.info("Worker %d stopped (%s)", worker.pid, how)
            return
        if worker.aborted_at is not None and worker.ready:
            self._log.info("Silent worker %d is gone (%s); replacing it", worker.pid, how)
            return
        if worker.aborted_at is not None:  # a failed boot, counted when it was aborted
            self._log.info("Worker %d, aborted while booting, is gone (%s)", worker.pid, how)
            return
        boot_error = code in (ExitCode.APP_LOAD_ERROR, ExitCode.WORKER_BOOT_ERROR)
        if self._unproven(worker) and (boot_error or self._failures + 1 >= BOOT_FAILURE_LIMIT):
            self._fail_generation(worker, code, how)
            return
        level, message = exit_verdict(worker.pid, code, how, served=worker.ready,
                                      leaving=worker.leaving)  # fmt: skip
        self._log.log(level, "%s", message)
        if not worker.ready:
            self._note_failure()

    def _unproven(self, worker: Worker) -> bool:
        """Whether ``worker`` is of the current generation, none of which served yet."""
        return worker.generation == self._generation and not self._proven

    def _boot_timed_out(self, worker: Worker, how: str) -> None:
        """A worker still booting after the heartbeat limit: a failed boot, as if it died."""
        if self._unproven(worker) and self._failures + 1 >= BOOT_FAILURE_LIMIT:
            self._fail_generation(worker, -signal.SIGABRT, how)
        else:
            self._note_failure()

    def _note_failure(self) -> None:
        """Back off exponentially while new workers die before serving."""
        self._failures += 1
        delay = backoff_seconds(self._failures)
        if delay:
            self._log.warning("Workers keep dying before serving; next spawn in %.2fs", delay)
        self._next_spawn_at = time.monotonic() + delay

    def _fail_generation(self, worker: Worker, code: int, how: str) -> None:
        if code == ExitCode.APP_LOAD_ERROR:
            reason = f"the application could not be loaded (worker {worker.pid}, {how})"
        else:
            reason = f"worker {worker.pid} failed to boot ({how})"
        if self._stable is None:
            self._log.error("Stopping: %s", reason)
            app_error = code == ExitCode.APP_LOAD_ERROR
            self._exit_code = ExitCode.APP_LOAD_ERROR if app_error else ExitCode.WORKER_BOOT_ERROR
            self._stop_signal = signal.SIGQUIT
            return
        self._log.error("reload failed: %s; keeping the previous workers", reason)
        self._rollback()

    # --- periodic checks ----------------------------------------------------------------

    def _maintain(self) -> None:
        now = time.monotonic()
        self._check_generation()
        self._check_leaving(now)
        self._enforce_deadlines(now)
        self._check_heartbeats(now)
        if self.config.max_worker_memory and now >= self._next_memory_check:
            self._next_memory_check = now + MEMORY_CHECK_SECONDS
            self._check_memory()
        self._manage_workers()

    def _check_generation(self) -> None:
        """When every worker of a new generation serves: announce it, retire the old one."""
        if self._stable is not None and self._stable[0] == self._generation:
            return
        ready = [w for w in self._workers.running(self._generation) if w.ready]
        if len(ready) < self._num_workers:
            return
        old = [w for w in self._workers if w.generation != self._generation and not w.stopping]
        plural = "s" if len(ready) != 1 else ""
        if self._stable is None:
            names = ", ".join(listener.name for listener in self._listeners)
            self._log.info("porch ready: %d worker%s serving %s", len(ready), plural, names)
        else:
            self._log.info("reload complete: %d new worker%s serving, stopping %d old",
                           len(ready), plural, len(old))  # fmt: skip
        for worker in old:
            self._workers.stop(worker, signal.SIGTERM, self.config.graceful_timeout)
        self._stable = (self._generation, self.config, self._num_workers)

    def _check_leaving(self, now: float) -> None:
        """Workers stopping on their own (recycling) are replaced now, not once they are
        gone: with -w 1 new connections would wait for the whole drain otherwise."""
        for worker in self._workers:
            if not worker.stopping and worker.channel.leaving():
                worker.leaving = True
                worker.stop_deadline = now + self.config.graceful_timeout + STOP_MARGIN_SECONDS

    def _enforce_deadlines(self, now: float) -> None:
        for worker in overdue_workers(self._workers, now):
            why = "still there after SIGABRT" if worker.aborted_at else "it did not stop in time"
            self._workers.kill(worker, why)

    def _check_heartbeats(self, now: float) -> None:
        if self.config.timeout <= 0:
            return
        limit = self.config.timeout + HEARTBEAT_MARGIN_SECONDS
        for worker, silence in silent_workers(self._workers, now, limit):
            worker.aborted_at = now
            worker.stop_deadline = now + ABORT_GRACE_SECONDS
            self._workers.send(worker, signal.SIGABRT)  # faulthandler dumps the stacks
            if worker.ready:
                self._log.error("worker %d silent for %.1fs, killed", worker.pid, silence)
                continue
            # Booting (importing the app) for longer than --timeout + the margin is a
            # failed boot: back off, and stop (or roll back) if the canary keeps failing.
            self._log.error(
                "worker %d silent for %.1fs while booting (the app import may take at most "
                "--timeout + %gs), killed", worker.pid, silence, HEARTBEAT_MARGIN_SECONDS,
            )  # fmt: skip
            self._boot_timed_out(worker, f"still booting after {silence:.1f}s")

    def _check_memory(self) -> None:
        limit = self.config.max_worker_memory
        current = self._workers.running(self._generation)
        for worker, rss in over_memory(current, limit, read_rss_bytes):
            self._log.warning(
                "Worker %d uses %.1f MiB (RSS), above --max-worker-memory %.1f MiB; recycling it",
                worker.pid, rss / 2**20, limit / 2**20,
            )  # fmt: skip
            self._workers.stop(worker, signal.SIGTERM, self.config.graceful_timeout)

    # --- reload -------------------------------------------------------------------------

    def _start_reload(self) -> None:
        """HUP: re-read the config and boot a new generation; the old one serves meanwhile."""
        if self._stable is None:
            self._log.warning("Reload ignored: porch is still starting")
            return
        try:
            config = self._reload_config() if self._reload_config is not None else self.config
            if self._reload_config is not None:
                setup_logging(config)  # all or nothing: on error the old logging stays
        except PorchError as exc:
            self._log.error("reload failed: %s", exc)
            return
        chown_log_files(*self._ids)
        if self._generation != self._stable[0]:  # a reload under way is superseded
            for worker in self._workers.running(self._generation):
                self._workers.stop(worker, signal.SIGTERM, self.config.graceful_timeout)
        else:  # what a failed reload goes back to, with the count TTIN/TTOU left
            self._stable = (self._generation, self.config, self._num_workers)
        for name in RESTART_ONLY:
            if getattr(config, name) != getattr(self._stable[1], name):
                flag = name.replace("_", "-")
                self._log.warning("--%s changed: it takes effect after a restart, not a HUP", flag)
        self._apply(config, config.workers)
        self._generation, self._next_generation = self._next_generation, self._next_generation + 1
        self._proven = False
        self._log.info("Reloading: booting %d new worker(s)", self._num_workers)

    def _rollback(self) -> None:
        """Back to the generation, configuration, worker count and logging before the HUP."""
        assert self._stable is not None
        for worker in self._workers.running(self._generation):
            self._workers.stop(worker, signal.SIGTERM, self.config.graceful_timeout)
        generation, config, num_workers = self._stable
        if self._reload_config is not None:  # the reload set up the new config's logging
            try:
                setup_logging(config)
            except PorchError as exc:  # e.g. the old log directory is gone
                self._log.error("cannot restore the previous logging: %s; keeping the new", exc)
            chown_log_files(*self._ids)
        self._apply(config, num_workers)
        self._generation = generation
        self._proven = True

    def _apply(self, config: Config, num_workers: int) -> None:
        self.config = config
        self._num_workers = num_workers
        self._failures = 0
        self._next_spawn_at = 0.0
        os.umask(config.umask)
        try:
            self._set_pidfile(config.pid)
        except ConfigError as exc:
            self._log.error("%s", exc)

    def _set_pidfile(self, path: str | None) -> None:
        if path == self._pidfile:
            return
        if path is not None:
            write_pidfile(path, os.getpid())
        if self._pidfile is not None:
            remove_pidfile(self._pidfile, os.getpid())
        self._pidfile = path
