"""YAML that users hand us (accelerator configs, export manifests): read with bounds.

PyYAML's ``safe_load`` builds no Python objects, but it still expands aliases: a 1 KB file of
nested ``&a [*b, *b, ...]`` anchors (a "billion laughs" bomb) expands to gigabytes once a
caller walks or prints the value. hwsim's own files never use anchors or aliases, so the
loader here refuses them outright, caps the file size before reading, and turns deep nesting
(which PyYAML composes recursively) into an error instead of a ``RecursionError``.

:func:`brief` cuts a value for an error message, so a long or hostile value never becomes a
megabyte-long line.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

from .ir import HwsimError

MAX_CONFIG_BYTES = 1 << 20        # an accelerator config: a few hundred bytes in practice
MAX_MANIFEST_BYTES = 256 << 20    # an export manifest: ~1 MB for mobilenet_v2
MAX_DEPTH = 64                    # nesting of mappings/sequences (hwsim's files use < 8)
BRIEF_CHARS = 80


def brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters (``...`` marks the cut).

    The repr of a huge container is never built in full: containers are summarised by type
    and length first.
    """
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 16:
        return f"<{type(value).__name__} of {len(value)} items>"
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting limit."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not accepted",
                event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_CLoader = getattr(yaml, "CSafeLoader", None)   # libyaml: ~5x faster on a large manifest
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_events(text: str) -> None:
    """The :class:`_BoundedLoader` rules on libyaml's event stream (nothing is composed)."""
    depth = 0
    for ev in yaml.parse(text, Loader=_CLoader):
        if isinstance(ev, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{ev.anchor}) are not accepted", ev.start_mark)
        if isinstance(ev, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", ev.start_mark)
        elif isinstance(ev, _CLOSE):
            depth -= 1


def load_yaml_text(text: str | bytes, where: str, error=HwsimError) -> Any:
    """Parse ``text`` (named ``where`` in errors); raise ``error`` on any problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{where}: not UTF-8 text (byte {e.start})") from None
    try:
        if _CLoader is None:
            return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
        _check_events(text)  # aliases and depth first: the C composer has no hook for them
        return yaml.load(text, Loader=_CLoader)  # noqa: S506 (libyaml's SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        if len(problem) > 120:
            problem = problem[:117] + "..."
        raise error(f"{where}{line}: invalid YAML ({problem})") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise error(f"{where}: invalid YAML value ({' '.join(str(e).split())[:80]})") from None


def load_yaml_file(path: str | os.PathLike, *, max_bytes: int, what: str = "file",
                   error=HwsimError) -> Any:
    """Read and parse the YAML file ``path``, refusing files over ``max_bytes``."""
    path = os.fspath(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise error(f"{path}: {size:,} bytes is too large for a {what} (limit "
                        f"{max_bytes:,} bytes)")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:  # grew while we looked
        raise error(f"{path}: too large for a {what} (limit {max_bytes:,} bytes)")
    return load_yaml_text(data, path, error)
