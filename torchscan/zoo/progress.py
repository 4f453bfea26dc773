"""The sweep's progress line: rows done of the total, failures, what is left, the rate and the time left
(tqdm), drawn on a stream the caller gives (the command gives stderr); nothing without one."""

from __future__ import annotations

from typing import Any, TextIO

from torchscan.zoo.records import ZooRow

__all__ = ["Progress"]


class Progress:
    """A tqdm bar over the ``total`` rows a sweep runs (``resumed``: rows its output already held)."""

    def __init__(self, stream: TextIO | None, total: int, resumed: int = 0) -> None:
        self._bar: Any = None
        self.ok = self.failed = 0
        self.total = total
        self.resumed = resumed
        if stream is None:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            file=stream,
            unit="row",
            dynamic_ncols=True,
            desc="torchscan zoo",
            bar_format="{desc}: {n_fmt}/{total_fmt} rows |{bar}| [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )
        self._bar.set_postfix_str(self._postfix(), refresh=True)

    def _postfix(self) -> str:
        left = self.total - self.ok - self.failed
        resumed = f", {self.resumed} resumed" if self.resumed else ""
        return f"ok {self.ok}, failed {self.failed}, remaining {left}{resumed}"

    def update(self, row: ZooRow) -> None:
        """Count ``row`` (ok or failed) and redraw."""
        if row.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
