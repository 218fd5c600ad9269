"""Parsing of the small value formats the CLI and the tools share."""

from __future__ import annotations

import re

from spgnet import SPGNetError


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``'256x176'`` -> ``(256, 176)`` (height x width); SPGNetError on anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise SPGNetError(f"{what} {text!r}: expected HEIGHTxWIDTH, e.g. 256x176")
    h, w = int(m.group(1)), int(m.group(2))
    if not (16 <= h <= 4096 and 16 <= w <= 4096):
        raise SPGNetError(f"{what} {text!r}: height and width must lie in [16, 4096]")
    return h, w


def raise_first_problem(path, problems: list[tuple[int, str]]) -> None:
    """For readers that collect every bad row of a file (``spgnet check`` lists them all):
    raise SPGNetError naming the file and line of the first one, if there is any."""
    if problems:
        line, message = problems[0]
        more = f" (and {len(problems) - 1} more problems; run `spgnet check` for the full list)" \
            if len(problems) > 1 else ""
        raise SPGNetError(f"{path} line {line}: {message}{more}")


__all__ = ["parse_size", "raise_first_problem"]
