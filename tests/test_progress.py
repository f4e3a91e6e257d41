"""Progress bars: drawn on a terminal (tqdm on a pseudo-terminal), nothing when piped or under CI;
the message callback keeps working."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from sqlml.progress import Progress

TRAIN = """CREATE MODEL late OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'],
             num_trials = 3, max_iterations = 20, random_seed = 1)
           AS SELECT dep_delay, distance, sched_dep_time, carrier, origin, arr_delay > 15 AS is_late
           FROM flights WHERE arr_delay IS NOT NULL AND month = 1;"""


def sqlml_run(tmp_path, terminal: bool) -> tuple[str, float]:
    """`sqlml run` of a training over January's 27,000 flights, its stderr read from a pseudo-terminal or a pipe."""
    script = tmp_path / "train.sql"
    script.write_text(TRAIN)
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # CI silences bars: this test is about a terminal
    command = [sys.executable, "-c", "from sqlml.cli import main; main()", "run", str(script), "--dataset", "flights"]
    started = time.monotonic()
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        return done.stderr, time.monotonic() - started
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=600) == 0
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace"), time.monotonic() - started


def test_a_terminal_shows_bars_a_pipe_does_not(tmp_path):
    shown, seconds = sqlml_run(tmp_path, terminal=True)
    assert seconds > 1
    assert "trials:" in shown and "3/3" in shown and "\r" in shown  # tqdm's bar, redrawn in place
    assert "Model 'late' version 1 stored." in shown  # the messages are still printed
    piped, _ = sqlml_run(tmp_path, terminal=False)
    assert "\r" not in piped and "trials:" not in piped and "it/s" not in piped
    assert "Trial 3/3" in piped and "Model 'late' version 1 stored." in piped


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_clock_runs_until_trained_while_another_thread_reports(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sqlml.progress.DELAY", 0.0)
    terminal = Terminal()
    progress = Progress(terminal)
    progress("Training logistic_reg 'm' on 990 rows × 3 features…")
    checks = threading.Thread(target=progress, args=("Data check: 'id' is unique on every row",))
    checks.start()
    checks.join()
    deadline = time.monotonic() + 10
    while "training: 00:0" not in terminal.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "training: 00:0" in terminal.getvalue()
    progress("Trained 'm' in 0.4 s (990 rows).")
    drawn = terminal.getvalue()
    time.sleep(0.6)
    assert terminal.getvalue() == drawn  # stopped: nothing drawn after "Trained"
    lines = [line.strip("\r").split("\r")[-1] for line in drawn.replace("\x1b[A", "").splitlines()]
    for message in ("Training logistic_reg 'm' on 990 rows × 3 features…", "Data check: 'id' is unique on every row",
                    "Trained 'm' in 0.4 s (990 rows)."):
        assert any(message in line for line in lines)


@pytest.mark.parametrize("ci, tty", [("true", True), (None, False)])
def test_silent_in_ci_and_off_a_terminal(monkeypatch, ci, tty):
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    stream = Terminal() if tty else io.StringIO()
    progress = Progress(stream)
    progress("Training x…")
    progress.advance("ML.PREDICT", 5000)
    progress("Trial 1/4: roc_auc=0.8 (best 0.8)")
    progress("Trained x.")
    progress.clear()
    assert stream.getvalue() == "Training x…\nTrial 1/4: roc_auc=0.8 (best 0.8)\nTrained x.\n"


def test_rows_read_by_an_ml_function_are_counted(penguins, monkeypatch):
    seen = []

    class Counting:
        def __call__(self, message):
            pass

        def advance(self, task, done, total=None, unit="row"):
            seen.append((task, done))

        def finish(self, task):
            seen.append((task, "finished"))

    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) "
                 "AS SELECT bill_length_mm, body_mass_g FROM penguins WHERE body_mass_g IS NOT NULL")
    penguins.executor.progress = Counting()
    rows = penguins.sql("SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM penguins WHERE body_mass_g IS NOT NULL))")
    assert len(rows.fetchall()) == 342
    assert seen[-2:] == [("ML.PREDICT", 342), ("ML.PREDICT", "finished")]
