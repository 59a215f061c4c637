"""Generation settings chosen on the Models page and used wherever the model answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import streamlit as st

from core.models.spec import ModelSpec
from ui import keys
from ui.common import t

# name: (minimum, maximum, step)
RANGES = {
    "max_new_tokens": (16, 4096, 16),
    "temperature": (0.0, 2.0, 0.05),
    "top_p": (0.05, 1.0, 0.05),
    "repetition_penalty": (1.0, 2.0, 0.01),
}


def settings() -> dict:
    """The user's generation settings (empty means the model's own defaults)."""
    return {k: v for k, v in st.session_state.get(keys.GENERATION, {}).items() if not k.startswith("_")}


def panel(spec: ModelSpec) -> None:
    """Sliders for the generation settings, starting from the model's published defaults."""
    chosen = st.session_state.setdefault(keys.GENERATION, {})
    if chosen.get("_model") != spec.key:
        chosen.clear()
        chosen.update(_model=spec.key, **_defaults(spec))
        for name in RANGES:
            st.session_state.pop(keys.GEN_WIDGET + name, None)
    for name, (low, high, step) in RANGES.items():
        widget = keys.GEN_WIDGET + name
        # Widget state is dropped when another page shows; it is seeded again from the choice.
        if widget not in st.session_state:
            st.session_state[widget] = chosen[name]
        chosen[name] = st.slider(t(f"models.gen.{name}"), low, high, step=step, key=widget)


def _defaults(spec: ModelSpec) -> dict:
    d = spec.defaults
    return {
        "max_new_tokens": d.max_new_tokens,
        "temperature": d.temperature,
        "top_p": d.top_p,
        "repetition_penalty": d.repetition_penalty,
    }


def kept(chunks: Iterable, key: str) -> Iterator[str]:
    """The text of a model's stream, also kept in ``st.session_state[key]`` as it comes, so a
    stopped or finished answer is still shown after the next rerun.
    """
    for chunk in chunks:
        st.session_state[key] = st.session_state.get(key, "") + chunk.text
        yield chunk.text
