"""CompactSettings must behave exactly like h2's Settings, whatever is set and acked."""

from __future__ import annotations

import h2.settings
from h2.settings import SettingCodes
from hypothesis import given
from hypothesis import strategies as st

from netkit.http._h2_settings import CompactSettings

KEYS = [*SettingCodes, 0x0A, 0xF00D]  # every known setting, plus unknown ones
VALUES = st.one_of(
    st.integers(0, 2),
    st.integers(16_384, 2**24),  # around MAX_FRAME_SIZE's valid range
    st.integers(2**31 - 2, 2**31 + 1),  # around INITIAL_WINDOW_SIZE's limit
    st.integers(0, 2**32),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), VALUES),
        st.tuples(st.just("ack"), st.none(), st.none()),
        st.tuples(st.just("get"), st.sampled_from(KEYS), st.none()),
        st.tuples(st.just("del"), st.sampled_from(KEYS), st.none()),
    ),
    max_size=40,
)


def apply(settings: h2.settings.Settings, op: str, key: object, value: object) -> object:
    try:
        if op == "set":
            settings[key] = value  # type: ignore[index]
            return None
        if op == "ack":
            return {k: (c.original_value, c.new_value) for k, c in settings.acknowledge().items()}
        if op == "del":
            del settings[key]  # type: ignore[arg-type]
            return None
        return settings[key]  # type: ignore[index]
    except (KeyError, h2.settings.InvalidSettingsValueError) as exc:
        return type(exc).__name__


def snapshot(settings: h2.settings.Settings) -> object:
    return (
        {key: settings.get(key) for key in settings},  # .get: pending-only keys are None
        settings.max_concurrent_streams,
        settings.max_header_list_size,
    )


@given(
    client=st.booleans(),
    initial=st.dictionaries(
        st.sampled_from(list(SettingCodes)), st.integers(1, 16_384), max_size=4
    ),
    ops=OPS,
)
def test_compact_settings_match_h2(client: bool, initial: dict, ops: list) -> None:
    try:
        reference = h2.settings.Settings(client=client, initial_values=initial)
    except h2.settings.InvalidSettingsValueError:
        try:
            CompactSettings(client=client, initial_values=initial)
        except h2.settings.InvalidSettingsValueError:
            return
        raise AssertionError("CompactSettings took initial values h2 refuses") from None
    compact = CompactSettings(client=client, initial_values=initial)
    assert snapshot(compact) == snapshot(reference)
    for op, key, value in ops:
        assert apply(compact, op, key, value) == apply(reference, op, key, value), (op, key)
        assert snapshot(compact) == snapshot(reference)
