"""`sampflow.rules.astropy_warnings`: astropy's warnings about a file become short text."""

from __future__ import annotations

import threading
import warnings

import pytest
from astropy.utils.exceptions import AstropyUserWarning

from sampflow.rules import astropy_warnings


def test_astropy_warnings_are_kept_once_folded_and_not_shown() -> None:
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with astropy_warnings.collect(notes, "/data/x.xml"):
            for _ in range(3):
                warnings.warn("/data/x.xml:12:3: W49: Empty cell\n   illegal",
                              AstropyUserWarning, stacklevel=1)
    assert notes == ["W49: Empty cell illegal"]
    assert shown == []


def test_other_warnings_are_given_back_to_the_warnings_module() -> None:
    notes: list[str] = []
    with pytest.warns(DeprecationWarning, match="not astropy's"):
        with astropy_warnings.collect(notes):
            warnings.warn("not astropy's", DeprecationWarning, stacklevel=1)
    assert notes == []


def test_threads_collecting_at_once_each_get_their_own_warnings() -> None:
    results: dict[int, list[str]] = {}
    start = threading.Barrier(4)

    def work(i: int) -> None:
        start.wait()
        for _ in range(50):
            notes = results.setdefault(i, [])
            with astropy_warnings.collect(notes):
                warnings.warn(f"file {i}", AstropyUserWarning, stacklevel=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [f"file {i}"] for i in range(4)}


def test_long_text_is_cut_and_many_are_counted() -> None:
    notes: list[str] = []
    with astropy_warnings.collect(notes):
        warnings.warn("x" * 1000, AstropyUserWarning, stacklevel=1)
    assert len(notes[0]) == astropy_warnings.MAX_NOTE_CHARS
    many = astropy_warnings.capped([f"w{i}" for i in range(9)])
    assert many[-1] == "and 4 more" and len(many) == astropy_warnings.MAX_NOTES + 1
