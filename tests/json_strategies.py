"""Hypothesis strategies for JSON documents, shared by the tests of the C walks over JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(alphabet: str, text_size: int, width: int, leaves: int
                ) -> tuple[st.SearchStrategy[str], st.SearchStrategy[Any],
                           st.SearchStrategy[Any]]:
    """Text drawn from ``alphabet``, JSON scalars, and nested values of up to ``width``
    members per container and ``leaves`` scalars in all."""
    text = st.text(st.sampled_from(list(alphabet)), max_size=text_size)
    scalars = st.one_of(text, st.none(), st.booleans(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=False, allow_infinity=False))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=width), st.dictionaries(text, inner, max_size=width)),
        max_leaves=leaves)
    return text, scalars, values
