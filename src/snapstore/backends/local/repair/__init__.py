"""verify and repair: find every damaged byte, and move it aside without losing a valid record.

verify reads everything and reports each problem with its path, line and byte
offset. repair, under the writer lock:

1. copies each damaged region of a log to quarantine (with a note of why);
2. recovers valid records from inside a damaged region (a bit flip in a newline
   glues two records into one bad line: both are found again by their
   ``{"seq":`` start);
3. writes the log anew from its valid records (temp, sync, rename, directory
   sync) — or, when the only damage is a torn tail, truncates it off;
4. removes temp files left by crashed writers and rebuilds the derived indices.

``salvage`` does 1-3 for one log, ``history`` checks a history file on it,
``store`` a whole store (its logs, ``indices``, histories and temp files).
"""

from snapstore.backends.local.repair.history import check_history
from snapstore.backends.local.repair.store import check_path, check_store

__all__ = ["check_history", "check_path", "check_store"]
