"""The collector settings of `relay serve` (``relay.ops.heap``): what exists once it has
started is frozen, and what a reload replaces is still collected. Each case runs in a fresh
interpreter, so the test process's own heap is never frozen."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """
import gc, weakref
from relay.ops.heap import freeze_long_lived, refreeze_if_frozen

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a
"""


def run(code: str) -> str:
    script = PRELUDE + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_freezing_moves_what_exists_out_of_later_collections() -> None:
    out = run(
        """
        kept = cycle()
        freeze_long_lived()
        print(gc.get_freeze_count() > 0, gc.is_tracked(kept))
        ref = weakref.ref(kept)
        del kept
        gc.collect()
        print(ref() is not None)  # frozen: a full collection no longer looks at it
        """
    )
    assert out.splitlines() == ["True True", "True"]


def test_cycles_made_after_the_freeze_are_collected() -> None:
    out = run(
        """
        freeze_long_lived()
        later = cycle()
        ref = weakref.ref(later)
        del later
        gc.collect()
        print(ref() is None)
        """
    )
    assert out == "True"


def test_refreezing_collects_what_was_frozen_and_dropped_since() -> None:
    out = run(
        """
        old = cycle()
        freeze_long_lived()
        ref = weakref.ref(old)
        del old  # a reload replaced it
        refreeze_if_frozen()
        print(ref() is None, gc.get_freeze_count() > 0)
        """
    )
    assert out == "True True"


def test_refreezing_does_nothing_where_nothing_was_frozen() -> None:
    out = run(
        """
        refreeze_if_frozen()
        print(gc.get_freeze_count())
        """
    )
    assert out == "0"
