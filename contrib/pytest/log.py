"""``CommandLog``: a PyMongo command listener that keeps what a test's clients sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring

#: Commands a test rarely means: handshakes, topology checks, session and cursor upkeep.
HOUSEKEEPING = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart",
     "saslContinue", "killCursors", "dropDatabase", "getMore"}
)


@dataclass
class CommandLog(monitoring.CommandListener):
    """A PyMongo command listener that keeps the commands sent, in order (name, command),
    leaving out the ``ignore`` set (:data:`HOUSEKEEPING` by default)."""

    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ignore: frozenset[str] = HOUSEKEEPING

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Record a command as it is sent."""
        if event.command_name not in self.ignore:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Ignore replies."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Ignore failures (the test sees the exception)."""

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.commands.clear()

    def names(self) -> list[str]:
        """Return the names of the recorded commands, in order."""
        return [name for name, _ in self.commands]

    def named(self, name: str) -> list[dict[str, Any]]:
        """Return the recorded commands called ``name`` (``"find"``, ``"update"``...)."""
        return [command for command_name, command in self.commands if command_name == name]
