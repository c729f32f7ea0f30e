"""Robot Framework listener (API v3) the executor passes with ``--listener``.

It turns what a suite does into ``RPA-LOG <json>`` lines on the real stdout, live and in
order: every message a keyword logs (``Log``, failures), each top-level step and each
test with its status. Robot's own console output is switched off, so these lines are
the run's log. Written to ``sys.__stdout__`` because Robot captures ``sys.stdout``
while a keyword runs.
"""

import json
import sys

ROBOT_LISTENER_API_VERSION = 3

LEVELS = {"INFO": 0, "WARN": 1, "ERROR": 2, "FAIL": 2, "SKIP": 1}
_reported = []  # keyword warnings already sent: Robot repeats them as system messages


def _emit(level, content):
    sys.__stdout__.write("RPA-LOG " + json.dumps({"level": level, "content": content}, ensure_ascii=False) + "\n")
    sys.__stdout__.flush()


def start_suite(data, result):
    _emit(0, f"Suite '{result.full_name}' started")


def end_suite(data, result):
    _emit(0 if result.status == "PASS" else 2, f"Suite '{result.full_name}' {result.status}: {result.stat_message}")


def start_test(data, result):
    _emit(0, f"Test '{result.name}' started")


def end_test(data, result):
    text = f"Test '{result.name}' {result.status}"
    _emit(LEVELS.get(result.status, 0), f"{text}: {result.message}" if result.message else text)


def end_keyword(data, result):
    # Only a test's own steps: nested keywords would repeat every failure up the stack.
    if type(result.parent).__name__ == "TestCase":
        _emit(LEVELS.get(result.status, 0),
              f"Step '{result.full_name}' {result.status} ({result.elapsed_time.total_seconds():.2f}s)")


def log_message(message):
    if message.level in LEVELS:
        _emit(LEVELS[message.level], message.message)
        if message.level in ("WARN", "ERROR"):
            _reported.append((message.level, message.message))


def message(msg):
    # Robot's own warnings and errors (syntax errors, missing variables...), once.
    if msg.level in ("WARN", "ERROR"):
        if (msg.level, msg.message) in _reported:
            _reported.remove((msg.level, msg.message))
            return
        _emit(LEVELS[msg.level], msg.message)
