"""Pausing the cyclic garbage collector around bulk allocation.

Compiling or loading a large blueprint allocates millions of small acyclic objects; each
allocation burst triggers collections that rescan everything alive, which made compilation
quadratic-looking (a 200k-node plan spent most of its time in the collector). Nothing built
here is cyclic garbage, so the collector is paused and restored afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


__all__ = ["gc_paused"]
