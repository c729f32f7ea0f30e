"""Recordings of a run (``videoRecordRequired``).

The screen is recorded with ffmpeg (x11grab) when there is a DISPLAY to grab and ffmpeg
to grab it; a headless executor still owes the hub a record of what happened, so the
console output is always recorded too, as an asciicast v2 file (``asciinema play``
replays it with its original timing). The screen recording wins when it worked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger("rpahub.executor.recorder")


class ConsoleRecording:
    content_type = "application/x-asciicast"

    def __init__(self, path: Path, title: str, width: int = 120, height: int = 40):
        self.path = path
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._fh = open(path, "w", encoding="utf-8")
        header = {"version": 2, "width": width, "height": height, "timestamp": int(time.time()), "title": title,
                  "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"}}
        self._fh.write(json.dumps(header, ensure_ascii=False) + "\n")

    def output(self, text: str, error: bool = False) -> None:
        if error:  # stderr in red, as a terminal would usually show it
            text = f"\x1b[31m{text}\x1b[0m"
        event = [round(time.monotonic() - self._start, 6), "o", text + "\r\n"]
        with self._lock:
            if not self._fh.closed:
                self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")

    def close(self) -> Path:
        with self._lock:
            self._fh.close()
        return self.path


class ScreenRecording:
    content_type = "video/mp4"

    def __init__(self, path: Path, display: str):
        self.path = path
        self.display = display
        self._proc: subprocess.Popen | None = None

    @staticmethod
    def possible() -> bool:
        return bool(os.environ.get("DISPLAY")) and shutil.which("ffmpeg") is not None

    def start(self) -> bool:
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "x11grab", "-framerate", "5",
               "-i", self.display, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(self.path)]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)
        except OSError as exc:
            log.warning("screen recording unavailable: %s", exc)
            return False
        time.sleep(0.3)  # a display ffmpeg cannot open makes it exit at once
        if self._proc.poll() is not None:
            log.warning("screen recording failed: %s", self._proc.stderr.read().decode(errors="replace").strip())
            self._proc = None
            return False
        return True

    def stop(self) -> Path | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            proc.communicate(b"q", timeout=15)  # "q" lets ffmpeg finish the file properly
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        except (BrokenPipeError, ValueError):
            proc.wait(15)
        if self.path.exists() and self.path.stat().st_size > 0:
            return self.path
        return None


class Recording:
    """What one run records; ``finish`` says which file to upload."""

    def __init__(self, folder: Path, run_id: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.console = ConsoleRecording(folder / f"console-recording-{run_id}.cast", f"console of run {run_id}")
        self.screen = None
        if ScreenRecording.possible():
            screen = ScreenRecording(folder / f"screen-recording-{run_id}.mp4", os.environ["DISPLAY"])
            if screen.start():
                self.screen = screen

    def output(self, text: str, error: bool = False) -> None:
        self.console.output(text, error)

    def finish(self) -> tuple[Path, str]:
        console = self.console.close()
        if self.screen is not None:
            screen = self.screen.stop()
            if screen is not None:
                return screen, ScreenRecording.content_type
        return console, ConsoleRecording.content_type
