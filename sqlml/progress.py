"""Progress bars for training, tuning trials, explanations and long scoring, drawn with tqdm: its
notebook widget in Jupyter (a text bar where ipywidgets is missing), a bar on stderr in a terminal,
nothing when the output is neither (piped, a file) or under CI.

:class:`Progress` is sqlml's ``progress`` callback: called with a message, it prints the message (above
any bar) as the plain callback always did; sqlml also calls :meth:`Progress.advance` with counts where
it has them (rows read, trials run). A plain function still works as the callback: it gets the
messages only.

    conn = sqlml.connect("warehouse.duckdb", progress=sqlml.progress.Progress())
"""

from __future__ import annotations

import os
import re
import sys
import threading
import typing as t

TRIAL = re.compile(r"Trial (\d+)/(\d+)")
DELAY = 1.0  # seconds before a bar appears: quick statements draw nothing
TICK = 0.25  # seconds between redraws of the training bar's clock


def shown(stream: t.TextIO) -> bool:
    """Whether bars are drawn on ``stream``: a terminal or a notebook, and not under CI."""
    if os.environ.get("CI"):
        return False
    return _in_notebook() or bool(getattr(stream, "isatty", lambda: False)())


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """Messages on ``stream`` and, where :func:`shown`, tqdm bars: a clock while a model trains, a bar of
    trials while tuning, a count of rows while a statement reads its input."""

    def __init__(self, stream: t.TextIO | None = None, bars: bool | None = None):
        self.stream = stream or sys.stderr
        self.bars = shown(self.stream) if bars is None else bars
        self._lock = threading.RLock()  # messages come from two threads (the data checks run beside the fit)
        self._open: dict[str, t.Any] = {}
        self._ticking: threading.Event | None = None

    def __call__(self, message: str) -> None:
        if message.startswith("Trained"):
            self.finish("training")
        with self._lock:
            if self._open:
                self._tqdm().write(message, file=self.stream)
            else:
                print(message, file=self.stream, flush=True)
        if message.startswith("Training") and "trials" not in self._open:
            self._start_clock()
        trial = TRIAL.match(message)
        if trial:
            self.advance("trials", int(trial[1]), int(trial[2]), "trial")

    def advance(self, task: str, done: int, total: int | None = None, unit: str = "row") -> None:
        """``done`` of ``total`` (None: unknown) ``unit``s of ``task`` are done."""
        if not self.bars:
            return
        with self._lock:
            bar = self._open.get(task) or self._bar(task, total, unit)
            bar.update(done - bar.n)
            if total is not None and done >= total:
                self.finish(task)

    def finish(self, task: str) -> None:
        """Close ``task``'s bar (it stays on screen, complete)."""
        with self._lock:
            if task == "training" and self._ticking is not None:
                self._ticking.set()
                self._ticking = None
            bar = self._open.pop(task, None)
            if bar is not None:
                bar.close()

    def clear(self) -> None:
        """Close every bar: the statement has ended."""
        for task in list(self._open):
            self.finish(task)

    def _bar(self, task: str, total: int | None, unit: str) -> t.Any:
        clock = "{desc}: {elapsed}" if task == "training" else None
        bar = self._tqdm()(total=total, desc=task, unit=unit, unit_scale=total is None, file=self.stream,
                           delay=DELAY if total is None else 0, leave=False, bar_format=clock, dynamic_ncols=True)
        self._open[task] = bar
        return bar

    def _start_clock(self) -> None:
        """The training bar has no count to advance: a thread redraws its elapsed time until "Trained…"."""
        if not self.bars:
            return
        with self._lock:
            self.finish("training")
            bar, stop = self._bar("training", None, "s"), threading.Event()
            self._ticking = stop

        def tick() -> None:
            while not stop.wait(TICK):
                with self._lock:
                    if not stop.is_set() and bar.format_dict["elapsed"] >= DELAY:
                        bar.refresh()
        threading.Thread(target=tick, daemon=True).start()

    @staticmethod
    def _tqdm() -> t.Any:
        """tqdm's notebook widget in Jupyter when ipywidgets is installed, else its text bar."""
        if _in_notebook():
            try:
                import ipywidgets  # noqa: F401  tqdm.notebook needs it to draw
                from tqdm.notebook import tqdm
                return tqdm
            except ImportError:
                pass
        from tqdm import tqdm
        return tqdm
