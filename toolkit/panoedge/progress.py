"""Progress of long stages: a bar on a terminal, plain lines in a log file.

Every long loop of panoedge (views, teacher training, pseudo labels, distillation, calibration,
quantization, table builds, evaluation) reports through :class:`tqdm`, a drop-in subclass of
``tqdm.tqdm``. On a terminal it is tqdm's usual bar. When the stream is not a terminal (output
redirected to a file, a CI log, ``nohup``, systemd), a bar's carriage returns would pile up on
one line that nobody sees until the stage ends; there it writes one plain, newline-terminated
line when the stage starts, then at most every :data:`LOG_INTERVAL_S` seconds, and at the end:

    panoedge: teacher train 120/800 (15%), 1.07 step/s, 1:52 elapsed, about 10:35 left

The interval can be changed with ``$PANOEDGE_PROGRESS_INTERVAL`` (seconds). The 20 s default
leaves headroom under the 30 s at which a silent log looks hung, for loops whose steps take
a few seconds each.
"""

from __future__ import annotations

import os
import re
import sys

from tqdm import tqdm as _tqdm

__all__ = ["tqdm", "LOG_INTERVAL_S", "is_terminal"]

LOG_INTERVAL_S = 20.0
"""Seconds between plain progress lines when the stream is not a terminal (see the module docstring)."""
_LOG_FORMAT = "panoedge: {desc} {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, {elapsed} elapsed, about {remaining} left{postfix}"
_LOG_FORMAT_NO_TOTAL = "panoedge: {desc} {n_fmt}, {rate_fmt}, {elapsed} elapsed{postfix}"


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _interval() -> float:
    raw = os.environ.get("PANOEDGE_PROGRESS_INTERVAL")
    if raw is None:
        return LOG_INTERVAL_S
    try:
        v = float(raw)
    except ValueError:
        return LOG_INTERVAL_S
    return v if v > 0 else LOG_INTERVAL_S


class tqdm(_tqdm):  # noqa: N801  (a drop-in for tqdm.tqdm, same name on purpose)
    """``tqdm.tqdm`` that writes plain timed lines instead of a bar when its stream is not a terminal."""

    def __init__(self, *args, **kwargs):
        stream = kwargs.get("file") or sys.stderr
        self._log_lines = not is_terminal(stream)
        if self._log_lines:
            kwargs.setdefault("mininterval", _interval())
            kwargs["maxinterval"] = max(kwargs.get("maxinterval", 0.0) or 0.0, kwargs["mininterval"])
            kwargs["miniters"] = 1  # time decides, not the count
            kwargs["dynamic_ncols"] = False
            kwargs["ncols"] = None
            kwargs["ascii"] = True
            kwargs["leave"] = True
            if kwargs.get("bar_format") is None:
                kwargs["bar_format"] = _LOG_FORMAT if kwargs.get("total") is not None or _has_len(args) else _LOG_FORMAT_NO_TOTAL
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if not getattr(self, "_log_lines", False):
            return super().display(msg, pos)
        if self.disable:
            return True
        line = (msg or self.__str__()).strip()
        if line and line != getattr(self, "_last_line", None):
            self._last_line = line
            self.fp.write(_tidy(line) + "\n")
            self.fp.flush()
        return True

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        # in a log, a postfix change alone is no reason to write a line: the timer decides
        return super().set_postfix(ordered_dict, refresh=refresh and not self._log_lines, **kwargs)

    def set_description(self, desc=None, refresh=True):
        return super().set_description(desc, refresh=refresh and not self._log_lines)

    def close(self):
        if getattr(self, "_log_lines", False) and not self.disable and not getattr(self, "_closed_once", False):
            self._closed_once = True
            self.display()  # the final count, whatever the timer says
            self.sp = None  # tqdm.close would add a bare newline after its own (suppressed) redraw
        return super().close()


def _tidy(line: str) -> str:
    """``'  6.66step/s'`` -> ``'6.66 step/s'``: a log line is read, not redrawn in place."""
    line = re.sub(r"\s+", " ", line).replace(" ,", ",")
    return re.sub(r"([\d?])([A-Za-z][^\s,]*/[A-Za-z]+)", r"\1 \2", line)


def _has_len(args) -> bool:
    if not args:
        return False
    try:
        len(args[0])
    except TypeError:
        return False
    return True
