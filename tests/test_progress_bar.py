"""The CLI's progress display (progress.ConsoleBar, drawn by tqdm) fed through the Progress callback."""

from __future__ import annotations

import io
import re

import pytest

from _tracker_helpers import TINY_WF, write_shot
from dino_tracker_vfx import stages
from dino_tracker_vfx.errors import ConfigError
from dino_tracker_vfx.progress import ConsoleBar, Progress
from dino_tracker_vfx.shots import open_shot
from dino_tracker_vfx.tracker.api import track
from dino_tracker_vfx.tracks import Query

LINE = re.compile(r"^(?P<stage>[a-z_]+) +(?P<pct>\d+)%\|[#0-9 ]{30}\| (?P<done>\d+)/(?P<total>\d+)(?P<rest>.*)$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_tracker_run_logs_plain_lines_per_stage_for_farm_logs(tmp_path):
    """Not a terminal: plain lines only (no carriage return), each naming a known stage with its own counter;
    a stage logs when it starts and when it ends (nothing between within 30 s), in the run's stage order."""
    shot = open_shot(str(write_shot(tmp_path / "plates")))
    log = io.StringIO()
    events = []
    bar = ConsoleBar(stream=log)
    track(shot, [Query(0, 20.0, 20.0)], preset=TINY_WF, cache_dir=tmp_path / "c",
          progress=lambda p: (events.append(p), bar(p)))
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = [LINE.match(s) for s in text.splitlines()]
    assert all(lines), text
    seen = [m["stage"] for m in lines]
    assert set(seen) <= set(stages.NAMES) and "train" in seen
    runs = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]  # each stage: one block of lines
    assert runs == [s for i, s in enumerate(runs) if s not in runs[:i]]
    for stage in runs:
        mine = [m for m in lines if m["stage"] == stage]
        last = [e for e in events if e.stage == stage][-1]
        assert len(mine) <= 2 and (int(mine[-1]["done"]), int(mine[-1]["total"])) == (last.done, last.total)
    train = [m for m in lines if m["stage"] == "train"]
    assert train[-1]["pct"] == "100" and train[-1]["done"] == str(TINY_WF["train"]["iterations"])
    assert len(lines) < len(events)  # quieter than the callback


def test_plain_lines_every_log_interval_with_eta_and_message():
    log = io.StringIO()
    bar = ConsoleBar(stream=log, log_interval=0.0)
    for i in range(0, 101, 25):
        bar(Progress("train", i, 100, iteration=i, eta_s=65.0 * (100 - i) / 100, message="loss {0.12}"))
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and all(LINE.match(s) for s in lines)
    assert lines[1].startswith("train         25%|#######") and " 25/100 eta 0m48s loss {0.12}" in lines[1]
    assert lines[-1].endswith("100/100 loss {0.12}")  # no ETA once done


def test_terminal_bar_redraws_in_place_with_label_counter_and_eta():
    term = Terminal()
    bar = ConsoleBar(stream=term)
    bar(Progress("features", 0, 6))
    bar(Progress("features", 6, 6))
    for i in (0, 40):
        bar(Progress("train", i, 100, iteration=i, eta_s=65.0, message="lr {1e-4}"))
    bar.close()
    out = term.getvalue()
    assert out.count("\r") >= 3
    finished, train = out.split("\n")[0], out.split("\n")[1]
    assert finished.rsplit("\r", 1)[-1].startswith("features     100%|") and "6/6" in finished
    last = train.rsplit("\r", 1)[-1]
    assert last.startswith("train         40%|") and last.endswith("40/100 eta 1m05s lr {1e-4}")


def test_the_farm_log_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DTVFX_PROGRESS_INTERVAL", "0")
    log = io.StringIO()
    bar = ConsoleBar(stream=log)
    for i in range(5):
        bar(Progress("flow", i, 10))
    assert bar.log_interval == 0.0 and len(log.getvalue().splitlines()) == 5
    monkeypatch.delenv("DTVFX_PROGRESS_INTERVAL")
    assert ConsoleBar(stream=log).log_interval == 30.0
    monkeypatch.setenv("DTVFX_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ConfigError, match=r"DTVFX_PROGRESS_INTERVAL='soon': seconds between plain progress lines"):
        ConsoleBar(stream=log)
