"""The cyclic garbage collector in `relay serve`: what exists once it has started is frozen."""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect, then move every object the collector tracks into its permanent generation,
    which later collections skip. What `relay serve` builds to start (the settings snapshot,
    templates, Litestar, pydantic's models: hundreds of thousands of objects) then no longer
    makes each full collection a pause of the event loop of tens of milliseconds; collections
    look only at what was allocated since. Objects frozen before are unfrozen first, so what a
    reload replaced is collected, and its cycles are not kept for ever."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def refreeze_if_frozen() -> None:
    """``freeze_long_lived`` again if it ran in this process (after a reload swapped the
    snapshot); nothing where the heap was never frozen (the app run in-process by tests)."""
    if gc.get_freeze_count():
        freeze_long_lived()
