"""A run setting is declared once, on its dataclass field; everything else is derived from it.

::

    @section("train")
    @dataclass(frozen=True)
    class TrainConfig:
        epochs: int = setting(12, help="Passes over the pooled rows.")

gives, with nothing written a second time:

* the run file's key: ``[train] epochs``, always the field's name (:func:`run_file_keys`);
* the command-line flag: ``--epochs``, that is ``--`` + the section's ``flag_prefix`` + the
  field's name with dashes (``[dp] epsilon``: ``--dp-epsilon``); or the flag the field names
  (``flag="--adversarial"``); or none (``flag=False``: run file only) (:func:`flags`);
* the flag's type (``int``, ``float``, ``choices``), help and shown default
  (:mod:`launch.options`);
* how a run-file value is checked and converted: from the field's annotation (:func:`coerce`);
* how an error names it: ``[train] epochs`` (:func:`label`); the command line adds the flag:
  ``[train] epochs (--epochs)`` (:func:`launch.options.fail`).

A field declared with a bare default is not a setting: it is derived (``ModelConfig.input_size``
from ``[data]``) or internal (``ActivationConfig.exact``).
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Union, get_args, get_origin

from protocols.errors import ConfigError, expected_got

_META = "mpcrnn.setting"
_SECTIONS: dict[type, tuple[str, str]] = {}  # config class -> (run-file section, flag prefix)


def setting(
    default: Any = MISSING,
    *,
    help: str,
    flag: str | bool = True,
    choices: tuple | None = None,
    parse: Callable[[Any], Any] | None = None,
    default_factory: Any = MISSING,
):
    """A dataclass field that is a run setting.  ``flag``: True, the derived flag; False, none
    (run file only); a string, that flag.  ``choices``: the values it may take (checked by
    :func:`check_choices`, offered by the flag).  ``parse``: applied to a run-file or flag value
    after its type is checked (the provider: ``ttp`` -> ``TTP``)."""
    meta = {_META: {"help": help, "flag": flag, "choices": choices, "parse": parse}}
    return field(default=default, default_factory=default_factory, metadata=meta)


def section(name: str, flag_prefix: str = ""):
    """Class decorator: the config dataclass is run-file section ``[name]``."""

    def deco(cls):
        _SECTIONS[cls] = (name, flag_prefix)
        return cls

    return deco


@dataclass(frozen=True)
class Setting:
    """One run setting, as its field declares it."""

    section: str  # the run file's [section]
    name: str  # the field's name, which is also the run-file key
    flag: str | None  # "--hidden-size"; None: run file only
    help: str
    type: Any  # the field's annotation, evaluated
    default: Any
    choices: tuple | None = None
    parse: Callable[[Any], Any] | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``[model] hidden_size``."""
        return f"[{self.section}] {self.name}"

    @property
    def dest(self) -> str | None:
        """The flag's parameter name in click (``--hidden-size``: ``hidden_size``)."""
        return self.flag[2:].replace("-", "_") if self.flag else None

    def shown_default(self) -> str | None:
        """The default as ``--help`` and the run-file reference show it; None: nothing to
        show (no value, an empty list, a flag that is off)."""
        if self.default is None or self.default is False or self.default == ():
            return None
        return str(self.default)


def section_of(cls) -> str:
    return _SECTIONS[cls][0]


@functools.cache
def settings_of(cls) -> tuple[Setting, ...]:
    """The settings of a config dataclass, in field order."""
    name, prefix = _SECTIONS[cls]
    hints = typing.get_type_hints(cls)  # the annotations, evaluated in the class's module
    out = []
    for f in fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        flag = meta["flag"]
        if flag is True:
            flag = "--" + prefix + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not MISSING else f.default_factory()
        help_, choices, parse = meta["help"], meta["choices"], meta["parse"]
        out.append(Setting(name, f.name, flag or None, help_, kind, default, choices, parse))
    return tuple(out)


def run_file_keys(classes: Iterable[type]) -> dict[str, dict[str, Setting]]:
    """{section: {key: setting}} of the run file."""
    return {section_of(cls): {s.name: s for s in settings_of(cls)} for cls in classes}


def flags(classes: Iterable[type]) -> dict[str, Setting]:
    """{click parameter name: setting} of every setting with a flag."""
    return {s.dest: s for cls in classes for s in settings_of(cls) if s.flag}


def label(obj, name: str) -> str:
    """How an error names field ``name`` of a config (or its class): ``[train] lr`` for a
    setting, the bare field name otherwise."""
    cls = obj if isinstance(obj, type) else type(obj)
    for s in settings_of(cls):
        if s.name == name:
            return s.label
    return name


def alternatives(choices: Iterable) -> str:
    """``a or b``; ``a | b | c``."""
    choices = [str(c) for c in choices]
    return " or ".join(choices) if len(choices) == 2 else " | ".join(choices)


def check_choices(obj) -> None:
    """Every setting of ``obj`` that declares choices holds one of them."""
    for s in settings_of(type(obj)):
        value = getattr(obj, s.name)
        if s.choices is not None and value not in s.choices:
            raise ConfigError(expected_got(s.label, alternatives(s.choices), value))


def _is(value, kind) -> bool:
    """isinstance for a setting's scalar types: bool is not a number here."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def coerce(s: Setting, value):
    """A run-file (or flag) value as field ``s`` holds it, checked against its annotation: the
    TOML integer 1 for a float, a list for a tuple; anything else of the wrong type is a
    ConfigError naming the setting."""
    kind, optional = s.type, False
    if get_origin(kind) in (Union, types.UnionType):  # `float | None`
        args = [a for a in get_args(kind) if a is not type(None)]
        kind, optional = args[0], len(args) < len(get_args(kind))
    if value is None and optional:
        return None
    if get_origin(kind) is tuple:  # tuple[int, ...]
        (item, _) = get_args(kind)
        if not (isinstance(value, (list, tuple)) and all(_is(v, item) for v in value)):
            raise ConfigError(
                expected_got(s.label, f"a list of {_WORDS[item][3:]}s", type(value).__name__)
            )
        return tuple(value)
    if not _is(value, kind):
        raise ConfigError(expected_got(s.label, _WORDS[kind], type(value).__name__))
    value = float(value) if kind is float else value
    return s.parse(value) if s.parse else value
