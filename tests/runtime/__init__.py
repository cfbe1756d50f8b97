"""Tests of the in-process runtime (SPEC 2, 3, 4 and 7)."""
