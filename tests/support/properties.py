"""Shared pieces of the property tests (Hypothesis): the settings every module uses, a
strategy for bencodable values, and the @given tests of a module (for its property count).

Each module picks its own numbers; derandomized unless HYPOTHESIS_EXPLORE is set, so a CI
run is reproducible.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def property_settings(examples: int) -> settings:
    """`examples` examples per property, no deadline, no example database."""
    return settings(max_examples=examples, deadline=None,
                    derandomize=not os.environ.get("HYPOTHESIS_EXPLORE"), database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def bencode_values(*, int_bound: int, max_bytes: int, max_items: int, max_key: int,
                   max_leaves: int) -> st.SearchStrategy:
    """Integers in ±int_bound and byte strings, nested in lists and dicts (bytes keys)."""
    return st.recursive(
        st.integers(-int_bound, int_bound) | st.binary(max_size=max_bytes),
        lambda inner: st.lists(inner, max_size=max_items)
        | st.dictionaries(st.binary(max_size=max_key), inner, max_size=max_items),
        max_leaves=max_leaves)


def given_tests(namespace: dict) -> list:
    """The @given tests among a module's globals()."""
    return [f for name, f in namespace.items()
            if name.startswith("test_") and hasattr(f, "hypothesis")]
