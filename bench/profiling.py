"""pyinstrument profiles of one implementation's timed calls (``python -m bench --profile odm``).

The harnesses run every timed call of the profiled implementation inside
:meth:`Profiles.around`; the samples of all the rounds of one workload (or spec task) add up in
one pyinstrument session, written as a text tree per workload. Only the timed call is
profiled (not the seeding, the set-up or the other implementations), so the tree shows where
that workload's time goes. Sampling slows the profiled implementation down: its times and
ratios in a profiled run are not comparable with anyone's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "Profiles", "profiled"]

#: Seconds between two samples: the sub-millisecond calls of get_by_id add up over their rounds.
DEFAULT_INTERVAL = 0.0005


class Profiles:
    """One pyinstrument profiler per workload, for the implementation named ``implementation``
    (the calls of the others run unprofiled)."""

    def __init__(self, implementation: str, interval: float = DEFAULT_INTERVAL) -> None:
        from pyinstrument import Profiler  # the dev extra's; imported only when profiling

        self.implementation = implementation
        self.interval = interval
        self._profiler_class = Profiler
        self._profilers: dict[str, Any] = {}

    def around(self, implementation: str, workload: str) -> AbstractContextManager[None]:
        """Profile the block if it runs ``implementation``'s ``workload`` call."""
        if implementation != self.implementation:
            return nullcontext()
        return self._profiled(workload)

    @contextmanager
    def _profiled(self, workload: str) -> Iterator[None]:
        profiler = self._profilers.get(workload)
        if profiler is None:
            profiler = self._profiler_class(interval=self.interval, async_mode="enabled")
            self._profilers[workload] = profiler
        profiler.start()  # pyinstrument adds this session to the workload's earlier ones
        try:
            yield
        finally:
            profiler.stop()

    def render(self, workload: str) -> str:
        """The text tree of ``workload`` (pyinstrument hides frames under 1 % of its time)."""
        return str(self._profilers[workload].output_text(unicode=True, color=False))

    def write(self, directory: Path) -> list[Path]:
        """Write one ``<implementation>-<workload>.txt`` per profiled workload; return the
        paths."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for workload in self._profilers:
            path = directory / f"{self.implementation}-{workload}.txt"
            path.write_text(self.render(workload))
            paths.append(path)
        return paths


def profiled(
    profiles: Profiles | None, implementation: str, workload: str
) -> AbstractContextManager[None]:
    """The block to run ``implementation``'s timed ``workload`` call in: profiled when
    ``profiles`` profiles that implementation, a no-op otherwise (also without profiles)."""
    if profiles is None:
        return nullcontext()
    return profiles.around(implementation, workload)
