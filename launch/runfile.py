"""The run configuration file (TOML) that every party of a run shares, and the environment.

Everything in it is public and hashed (:meth:`mpcrnn.config.RunConfig.digest`); parties with
different files stop before sharing anything.  Per-party settings (rank, data file, output
folder, rendezvous) are command-line flags.

Sections: ``[run]``, ``[model]``, ``[activation]``, ``[train]``, ``[fedavg]``, ``[dp]``,
``[adversarial]`` (one key per setting of :data:`mpcrnn.config.SECTIONS`, named as its field;
every key optional), ``[identities]`` (every process's certificate fingerprint, ``party0`` ..
``party{parties-1}`` and ``dealer`` with the TTP provider; ``mpcrnn keygen`` prints them) and
``[data]`` (the public declaration of every party's data, :class:`mpcrnn.declaration.DataSpec`).
Every key with its default and meaning: :func:`reference` (``python -m launch.runfile``).
Renamed keys still read: ``[model] hidden`` and ``layers`` (now ``hidden_size``, ``num_layers``).

Environment (torchrun / schedulers): ``MASTER_ADDR`` + ``MASTER_PORT`` give the rendezvous
``tcp://MASTER_ADDR:MASTER_PORT``, ``RANK`` the rank, ``WORLD_SIZE`` the number of processes
(data parties + 1 dealer with TTP; ``--parties`` and ``[run] parties`` count data parties).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import MISSING, fields

from mpcrnn import data as D
from mpcrnn.config import SECTIONS, DPConfig, ModelConfig, RunConfig
from mpcrnn.declaration import LONG_SERIES, suggested_frame
from mpcrnn.settings import alternatives, coerce, flags, run_file_keys, section_of, settings_of
from protocols.errors import ConfigError, DataError, expected_got

CONFIGS = {section_of(cls): cls for cls in SECTIONS}  # [section] -> its config dataclass
KEYS = run_file_keys(SECTIONS)  # [section] -> {key: setting}
# click parameter name -> setting: what a command line may override ([data]: forecasting's keys)
FLAGS = flags((*SECTIONS, D.DataSpec))
RENAMED = {"model": {"hidden": "hidden_size", "layers": "num_layers"}}  # old key -> its name
SECTION_KEYS = {name: set(keys) | set(RENAMED.get(name, ())) for name, keys in KEYS.items()}
SECTION_KEYS["identities"] = None  # party0.., dealer: checked against the party count in build()
SECTION_KEYS["data"] = {f.name for f in fields(D.DataSpec)}

MAX_RUN_FILE_BYTES = 1 << 20  # a run file is a few hundred bytes; bounds what a stray path reads


def read_file(path: str | None) -> dict:
    """The run file's sections, checked against the known keys (renamed keys renamed)."""
    if not path:
        return {}
    raw = _load(path)
    for section, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(
                expected_got(f"{path}: '{section}'", "a [section] table", "a top-level value")
            )
        if section not in SECTION_KEYS:
            raise ConfigError(
                expected_got(
                    f"{path}: section",
                    "one of " + ", ".join(f"[{s}]" for s in SECTION_KEYS),
                    f"[{section}]",
                )
            )
        if SECTION_KEYS[section] is None:
            continue
        unknown = set(body) - SECTION_KEYS[section]
        if unknown:
            raise ConfigError(
                expected_got(
                    f"{path}: keys of [{section}]",
                    ", ".join(sorted(KEYS.get(section, SECTION_KEYS[section]))),
                    ", ".join(sorted(unknown)),
                )
            )
        raw[section] = _renamed(path, section, body)
    return raw


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_RUN_FILE_BYTES + 1)
        if len(text) > MAX_RUN_FILE_BYTES:
            raise ConfigError(
                expected_got(
                    f"{path}: size",
                    f"at most {MAX_RUN_FILE_BYTES} bytes (a run config file)",
                    "more",
                )
            )
        return tomllib.loads(text.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{path}: expected a readable run config file, got {type(exc).__name__}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            expected_got(path, "UTF-8 TOML text", f"undecodable bytes at byte offset {exc.start}")
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: expected valid TOML, got {str(exc).splitlines()[0]}") from None


def _renamed(path: str, section: str, body: dict) -> dict:
    """``body`` with the keys of an earlier release under their names (not both)."""
    out = dict(body)
    for old, new in RENAMED.get(section, {}).items():
        if old in out:
            if new in out:
                raise ConfigError(
                    expected_got(f"{path}: [{section}] {new}", "set once", f"{new} and {old}")
                )
            out[new] = out.pop(old)
    return out


def build(raw: dict, overrides: dict) -> RunConfig:
    """RunConfig from the file's sections, then explicit command-line overrides (click parameter
    names, :data:`FLAGS`; None or an empty list: not given).  Defaults: the dataclasses'."""
    body = {name: dict(raw.get(name) or {}) for name in CONFIGS}
    data = dict(raw.get("data") or {})
    for dest, value in overrides.items():
        if value is not None and value != ():
            s = FLAGS[dest]
            (data if s.section == "data" else body[s.section])[s.name] = value
    values = {
        name: {key: coerce(KEYS[name][key], v) for key, v in section.items()}
        for name, section in body.items()
    }
    spec = _spec(data, in_file=bool(raw.get("data")))
    run = values["run"]
    try:
        model = ModelConfig(
            input_size=spec.input_size,
            num_classes=len(spec.classes),
            **_task(spec),
            **values["model"],
        )
        cfg = RunConfig(
            model=model,
            activation=CONFIGS["activation"](**values["activation"]),
            train=CONFIGS["train"](**values["train"]),
            spec=spec,
            fedavg=CONFIGS["fedavg"](**values["fedavg"]),
            dp=_dp(values["dp"]),
            identities=identities(
                raw.get("identities"),
                run.get("parties", RunConfig.parties),
                run.get("provider", RunConfig.provider),
            ),
            adversarial=CONFIGS["adversarial"](**values["adversarial"]),
            **run,
        )
        cfg.validate()  # here, in the launcher, before any process starts
    except (TypeError, ValueError) as exc:  # a value no check above foresaw
        raise ConfigError(
            f"run settings: expected values of the documented types, got {_first_line(exc)}"
        ) from None
    return cfg


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def identity_names(parties: int, provider: str) -> list[str]:
    """The [identities] keys of a run, in rank order."""
    return [f"party{r}" for r in range(parties)] + (["dealer"] if provider.upper() == "TTP" else [])


def identities(section: dict | None, parties: int, provider: str) -> tuple[str, ...]:
    """[identities] -> every process's pinned fingerprint in rank order (the dealer last); ()
    when the file has none (then --insecure-plaintext-transport, or `mpcrnn train`'s own)."""
    from protocols.network.identity import check_fingerprint

    if not section:
        return ()
    names = identity_names(parties, provider)
    if set(section) != set(names):
        raise ConfigError(
            expected_got(
                "[identities] keys",
                ", ".join(names),
                ", ".join(sorted(section)),
                "one fingerprint per process of the run",
            )
        )
    return tuple(check_fingerprint(section[n], f"[identities] {n}") for n in names)


def _dp(values: dict) -> DPConfig:
    """[dp] (values coerced) -> DPConfig, validated here, so a bad value stops the CLI before
    any launch.  On when epsilon or noise is set."""
    enabled = "epsilon" in values or "noise" in values
    if not enabled and set(values) - {"accountant"}:
        raise ConfigError(
            expected_got(
                "DP-SGD's settings",
                "[dp] epsilon or [dp] noise with delta and clip",
                ", ".join(sorted(values)) + " without either",
            )
        )
    cfg = DPConfig(enabled=enabled, **values)
    cfg.validate()
    return cfg


def _task(spec: D.DataSpec) -> dict:
    """The model's head from the declaration: classes, target bounds (regression), or the
    vocabulary (a language model, [data] kind text-lm: a head over the V tokens at every step)."""
    if spec.is_lm:
        return {"task": "lm", "output_size": spec.n_features}
    return {"task": "regress", "output_size": spec.n_targets} if spec.is_regression else {}


def _spec(section: dict | None, in_file: bool = True) -> D.DataSpec:
    if not section:
        return D.JAPANESE_VOWELS_SPEC
    from mpcrnn.windows import forecast_keys

    body = forecast_keys(dict(section), in_file)
    if "target_low" in body or "target_high" in body or body.get("kind") == "text-lm":
        body.setdefault("classes", ())  # regression, a language model: no classes to declare
    for key in ("classes", "feature_low", "feature_high"):
        if body.get(key) is not None:
            body[key] = tuple(body[key])
    if body.get("kind") in ("text", "text-lm") and "n_features" not in body:  # vocabulary size
        from mpcrnn.text import declared_features

        body["n_features"] = declared_features(body)
    try:
        return D.DataSpec(**body)
    except TypeError as exc:
        raise ConfigError(f"[data]: {exc}") from None


def from_environment(
    rank: int | None, rendezvous: str | None, parties: int | None, provider: str
) -> tuple[int, str, int]:
    """Fill rank / rendezvous / data-party count from torchrun-style variables when not given
    (``WORLD_SIZE`` counts processes: the data parties and the dealer)."""
    env = os.environ
    if rendezvous is None and "MASTER_ADDR" in env and "MASTER_PORT" in env:
        rendezvous = f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    if rank is None and "RANK" in env:
        rank = int(env["RANK"])
    if parties is None and "WORLD_SIZE" in env:
        n_processes = int(env["WORLD_SIZE"])
        parties = n_processes - (1 if provider.upper() == "TTP" else 0)
    missing = [
        n
        for n, v in (
            ("--rank or RANK", rank),
            ("--rendezvous or MASTER_ADDR/MASTER_PORT", rendezvous),
            ("[run] parties or WORLD_SIZE", parties),
        )
        if v is None
    ]
    if missing:
        raise ConfigError(
            expected_got(
                "process identity",
                "rank, rendezvous and party count",
                "missing " + ", ".join(missing),
            )
        )
    return rank, rendezvous, parties


def reference() -> str:
    """The run file with every key, its default (a key without one commented out) and its help:
    derived from the dataclasses, like the flags."""
    lines = []
    for cls in SECTIONS:
        lines.append(f"[{section_of(cls)}]")
        for s in settings_of(cls):
            choices = f" [{alternatives(s.choices)}]" if s.choices else ""
            lines.append(_line(s.name, s.default, s.help + choices))
        lines.append("")
    lines += [
        "[identities]             # every process's certificate fingerprint (mpcrnn keygen)",
        'party0 = "sha256:..."    # one line per data party, party0..party{parties-1}',
        'dealer = "sha256:..."    # with provider "TTP"',
        "",
        "[data]                   # the public declaration of every party's data",
    ]
    helps = {s.name: s.help for s in settings_of(D.DataSpec)}
    for f in fields(D.DataSpec):
        required = f.default is MISSING
        default, help_ = (..., "required") if required else (f.default, helps.get(f.name, ""))
        lines.append(_line(f.name, default, help_))
    return "\n".join(lines) + "\n"


def _line(key: str, default, help: str) -> str:
    """``key = default  # help``; commented out without a default."""
    line = f"{key} = {_toml(default)}" if default is not None else f"# {key} ="
    return f"{line:<24} # {help}" if help else line


def _toml(value) -> str:
    if value is ...:
        return "..."
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value) if not isinstance(value, float) else repr(value)


class MissingDataDeclaration(ConfigError):
    """``--data`` given but the run file has no ``[data]``: one error line; ``template`` is printed
    after it (a [data] section to fill in)."""

    def __init__(self, message: str, template: str) -> None:
        super().__init__(message)
        self.template = template


DATA_KEYS = "n_features, classes, max_len, scaling, feature_low, feature_high"


def require_data_declaration(raw: dict, config_file: str | None, data_file: str) -> None:
    """Raise :class:`MissingDataDeclaration` when the run file has no ``[data]`` and ``data_file``
    does not have the shape of the built-in demo declaration (Japanese Vowels: 12 features,
    classes "1".."9", which a run without ``[data]`` assumes).  A file that cannot be read, or
    that has the demo's shape with bad values, gets the normal intake error."""
    if raw.get("data") or not os.path.isfile(data_file):
        return
    try:
        D.load_party_file(data_file, D.JAPANESE_VOWELS_SPEC)
        return
    except DataError as exc:
        shape = ("number of features", "classes", "label of sequence", "@targetLabel")
        if not any(k in str(exc) for k in shape):
            return  # the demo's shape: a bad value, length or file, reported as such by the intake
    where = f"{config_file} has no [data] section" if config_file else "no run file (--config)"
    msg = expected_got(
        f"data declaration for --data {data_file}",
        f"a [data] section in the run file (--config) with {DATA_KEYS}, agreed by all parties",
        where,
        "add the [data] section printed above",
    )
    raise MissingDataDeclaration(msg, data_template(data_file))


REGRESSION_TEMPLATE = [
    "target_low = <low>    # regression: PUBLIC bounds of the target (domain knowledge); every",
    "target_high = <high>  # party's targets must lie inside, and are scaled by them like features",
]


def data_template(data_file: str) -> str:
    """A [data] section to paste into the run file: shapes and class names from this party's
    own file when it is a readable .ts file, bounds as placeholders (they must be PUBLIC)."""
    frame = "1                    # time steps per model input; a long series of few features: 5-10"
    targets = []  # regression: the target bounds to declare
    n_features, classes, max_len = (
        "<F>",
        '["<class 1>", "<class 2>"]',
        "<longest sequence any party may hold>",
    )
    if str(data_file).lower().endswith(".ts"):
        try:
            own = D.read_ts(data_file)
            n_features, max_len = (
                str(own.n_features),
                f"{own.max_len}   # your longest; every party's must fit",
            )
            classes = "[" + ", ".join(f'"{c}"' for c in own.classes) + "]"
            if not own.classes:  # @targetLabel true: regression
                classes, targets = "[]", REGRESSION_TEMPLATE
            if own.max_len > LONG_SERIES:
                frame = (
                    f"{suggested_frame(own.max_len)}   # {own.max_len} steps are long for a "
                    "recurrent model: frames of this many steps (rehearse with and without)"
                )
        except Exception:  # noqa: BLE001 - a template is still useful without the file's shapes
            pass
    return "\n".join(
        [
            "[data]                       # the public declaration of every party's data, the same "
            "in every party's run file",
            f"n_features = {n_features}",
            f"classes = {classes}   # all classes of all parties, in one agreed order",
            f"max_len = {max_len}",
            'scaling = "bounds"           # each feature mapped from [low, high] to [-1, 1]',
            "feature_low = [<low of feature 0>, ...]    # PUBLIC bounds agreed by all parties from "
            "domain knowledge",
            "feature_high = [<high of feature 0>, ...]  # (not your rows' min/max: those would "
            "reveal your data's extremes)",
            f"frame = {frame}",
            "# differences = [0, 1]        # also the steps between values (a trend; a spectrum's "
            "curvature: [2] with difference_gains): docs/regression.md",
            *targets,
            "# then check the settings on your own rows, with nothing shared: mpcrnn rehearse "
            "--config run.toml --data " + str(data_file),
        ]
    )


if __name__ == "__main__":
    print(reference(), end="")
