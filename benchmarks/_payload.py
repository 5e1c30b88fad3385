"""What every benchmark writes: a typical iteration record, and its exact snapstore line.

The baselines write the bytes snapstore would write for the same record, so a
ratio compares the work around the bytes, not the sizes of two encodings.
"""

from __future__ import annotations

from typing import Any

from snapstore._log.record import Clock, encode_line
from snapstore._records import Entry
from snapstore._values import encode_data

_MAX_BYTES = 1 << 20


def payload(i: int) -> dict[str, Any]:
    """Record ``i`` of a training run, as a pipeline would log it."""
    return {"iteration": i, "stage": "train", "loss": 0.2315, "accuracy": 0.9371, "lr": 0.0003}


def line(i: int) -> bytes:
    """The line snapstore appends for ``payload(i)`` as record ``i + 1``."""
    entry = Entry(encode_data(payload(i), _MAX_BYTES), None)
    return encode_line(i + 1, Clock().now(), entry)
