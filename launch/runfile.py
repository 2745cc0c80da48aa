"""The run configuration file (TOML) that every party of a run shares, and the environment.

Everything in it is public and hashed (:meth:`mpcrnn.config.RunConfig.digest`); parties with
different files stop before sharing anything.  Per-party settings (rank, data file, output
folder, rendezvous) are command-line flags.  Example (every key optional; defaults shown)::

    [run]
    parties = 3              # data parties (the dealer is not counted)
    provider = "ttp"         # ttp | he (2 parties, no dealer) | tfp (insecure simulation)
    he = "bfv n=8192 q=60+60+60+38 t=3x59 sigma=40"   # BFV parameters of provider = "he"
    reveal_to = []           # ranks receiving the final weights; empty: all
    reveal_metrics = false
    mode = "mpc"             # mpc | fedavg (local training + secure averaging; see [fedavg])
    insecure_plaintext_transport = false   # true: no identities, no encryption (tests, demos)

    [identities]             # every process's certificate fingerprint (mpcrnn keygen prints it)
    party0 = "sha256:..."    # one line per data party, party0..party{parties-1}
    party1 = "sha256:..."
    dealer = "sha256:..."    # with provider = "ttp"

    [model]
    cell = "gru"             # rnn | gru | lstm
    hidden = 32
    layers = 1

    [activation]             # the polynomial sigmoid/tanh every party evaluates on shares
    degree = 23              # odd, <= 31: 23 (5 levels, tanh error 0.0069) | 15 (4, 0.033)
    bound = 8.0              # power of two: tanh on [-bound, bound], sigmoid on [-2 bound, ...]
    cell_clip = 8.0          # LSTM cell state clamped to [-cell_clip, cell_clip] (0: off)

    [train]
    epochs = 12
    batch_size = 32
    optimizer = "adam"       # adam | adamw | sgd
    lr = 0.01                # default: adam/adamw 0.01, sgd 0.2
    beta1 = 0.9              # adam
    beta2 = 0.999            # adam
    eps = 1e-3               # adam (>= 2^-13 on shares)
    momentum = 0.9           # sgd
    weight_decay = 0.0
    clip_value = 1.0
    clip_norm = 1.0          # after clip_value; 0: off
    schedule = "cosine"      # constant | warmup | cosine (public, per step)
    warmup_steps = 10
    seed = 0

    [fedavg]                 # only with mode = "fedavg"
    rounds = 0                # 0: one round per epoch ([train] epochs)
    local_epochs = 2
    weighting = "rows"       # rows | equal
    update_clip = 0.0        # bound each party's update norm on shares (0: off)

    [dp]                     # DP-SGD inside MPC (mpcrnn.dp); on when epsilon or noise is set
    epsilon = 3.0            # target epsilon: sigma from Opacus's get_noise_multiplier  (or:)
    noise = 1.0              # noise multiplier sigma: the spent epsilon is reported
    delta = 1e-5
    clip = 1.0               # per-example L2 clipping norm C
    accountant = "rdp"       # rdp | prv (opacus.accountants)

    [data]                   # the public declaration of every party's data
    n_features = 12
    classes = ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    max_len = 29
    scaling = "bounds"       # bounds | none
    feature_low = [...]      # per feature, public
    feature_high = [...]
    value_bound = 8.0
    frame = 1                # time steps stacked into one model input (long series: 5-10)

Environment (torchrun / schedulers): ``MASTER_ADDR`` + ``MASTER_PORT`` give the rendezvous
``tcp://MASTER_ADDR:MASTER_PORT``, ``RANK`` the rank, ``WORLD_SIZE`` the number of processes
(data parties + 1 dealer with TTP).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields

from mpcrnn import data as D
from mpcrnn.config import (
    ActivationConfig,
    AdversarialConfig,
    DPConfig,
    FedAvgConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    file_keys,
)
from mpcrnn.declaration import LONG_SERIES, suggested_frame
from protocols.errors import ConfigError, DataError, expected_got

# section -> the dataclass whose fields it sets (keys: mpcrnn.config.file_keys)
CONFIGS = {
    "run": RunConfig,
    "model": ModelConfig,
    "activation": ActivationConfig,
    "train": TrainConfig,
    "fedavg": FedAvgConfig,
    "dp": DPConfig,
    "adversarial": AdversarialConfig,
}
SECTIONS = {name: set(file_keys(cls)) for name, cls in CONFIGS.items()}
SECTIONS["identities"] = None  # party0.., dealer: checked against the party count in build()
SECTIONS["data"] = {f.name for f in fields(D.DataSpec)}


def _flag(section: str, key: str) -> str:
    """The command-line flag (click's name) that sets ``key`` of ``section``."""
    if section == "dp":
        return f"dp_{key}"  # --dp-epsilon, --dp-noise, --dp-delta, --dp-clip, --dp-accountant
    if section == "adversarial":
        return "adversarial" if key == "method" else f"adv_{key}"  # --adversarial, --adv-eps
    if section == "activation":
        return f"activation_{key}"  # run file only: no command-line flag sets these
    return key


# flag -> (section, key): every run setting a command line may override
FLAGS = {_flag(sec, key): (sec, key) for sec, cls in CONFIGS.items() for key in file_keys(cls)}


MAX_RUN_FILE_BYTES = 1 << 20  # a run file is a few hundred bytes; bounds what a stray path reads


def read_file(path: str | None) -> dict:
    if not path:
        return {}
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
        raw = tomllib.loads(text.decode("utf-8"))
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
    for section, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(
                expected_got(f"{path}: '{section}'", "a [section] table", "a top-level value")
            )
        if section not in SECTIONS:
            raise ConfigError(
                expected_got(
                    f"{path}: section",
                    "one of " + ", ".join(f"[{s}]" for s in SECTIONS),
                    f"[{section}]",
                )
            )
        if SECTIONS[section] is None:
            continue
        unknown = set(body) - SECTIONS[section]
        if unknown:
            raise ConfigError(
                expected_got(
                    f"{path}: keys of [{section}]",
                    ", ".join(sorted(SECTIONS[section])),
                    ", ".join(sorted(unknown)),
                )
            )
    return raw


# how a run-file value becomes a field value, where the field wants more than the TOML type
COERCE = {
    "world_size": int,
    "hidden_size": int,
    "num_layers": int,
    "provider": lambda v: str(v).upper(),
    "reveal_to": tuple,
    "reveal_metrics": bool,
    "mode": str,
    "insecure_transport": bool,
}


def _fields(section: str, body: dict) -> dict:
    """A section's run-file keys -> its dataclass's field names (values coerced)."""
    names = file_keys(CONFIGS[section])
    out = {names[k]: v for k, v in body.items()}
    return {k: COERCE[k](v) if k in COERCE else v for k, v in out.items()}


def build(raw: dict, overrides: dict) -> RunConfig:
    """RunConfig from the file's sections, then explicit command-line overrides (flag names,
    :data:`FLAGS`; None: not given).  Defaults: the dataclasses' (mpcrnn.config)."""
    body = {name: dict(raw.get(name) or {}) for name in CONFIGS}
    for flag, value in overrides.items():
        if value is not None:
            section, key = FLAGS[flag]
            body[section][key] = value
    spec = _spec(raw.get("data"))
    try:
        run = _fields("run", body["run"])
        model = ModelConfig(
            input_size=spec.input_size,
            num_classes=len(spec.classes),
            **_fields("model", body["model"]),
        )
        world_size = run.get("world_size", RunConfig.world_size)
        provider = run.get("provider", RunConfig.provider)
        cfg = RunConfig(
            model=model,
            activation=ActivationConfig(**_fields("activation", body["activation"])),
            train=TrainConfig(**body["train"]),
            spec=spec,
            fedavg=FedAvgConfig(**body["fedavg"]),
            dp=_dp(body["dp"]),
            identities=identities(raw.get("identities"), world_size, provider),
            adversarial=AdversarialConfig(**body["adversarial"]),
            **run,
        )
        cfg.validate()  # here, in the launcher, before any process starts
    except (TypeError, ValueError) as exc:  # a value of the wrong type in the run file
        raise ConfigError(
            f"run settings: expected values of the documented types, got {_first_line(exc)}"
        ) from None
    return cfg


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def identity_names(world_size: int, provider: str) -> list[str]:
    """The [identities] keys of a run, in rank order."""
    return [f"party{r}" for r in range(world_size)] + (
        ["dealer"] if provider.upper() == "TTP" else []
    )


def identities(section: dict | None, world_size: int, provider: str) -> tuple[str, ...]:
    """[identities] -> every process's pinned fingerprint in rank order (the dealer last); ()
    when the file has none (then --insecure-plaintext-transport, or `mpcrnn train`'s own)."""
    from protocols.network.identity import check_fingerprint

    if not section:
        return ()
    names = identity_names(world_size, provider)
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


def _dp(section: dict) -> DPConfig:
    """[dp] / --dp-* -> DPConfig (validated here, so a bad value stops the CLI before any
    launch).  On when epsilon or noise is set."""
    values = {}
    for key, value in section.items():
        if key != "accountant":
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    expected_got(f"[dp] {key}", "a number", type(value).__name__)
                ) from None
        values[key] = value if key != "accountant" else str(value)
    enabled = "epsilon" in values or "noise" in values
    if not enabled and set(section) - {"accountant"}:
        raise ConfigError(
            expected_got(
                "DP settings",
                "--dp-epsilon or --dp-noise with --dp-delta/--dp-clip",
                ", ".join(sorted(set(section))) + " without either",
            )
        )
    cfg = DPConfig(enabled=enabled, **_fields("dp", values))
    cfg.validate()
    return cfg


def _spec(section: dict | None) -> D.DataSpec:
    if not section:
        return D.JAPANESE_VOWELS_SPEC
    body = dict(section)
    for key in ("classes", "feature_low", "feature_high"):
        if body.get(key) is not None:
            body[key] = tuple(body[key])
    try:
        return D.DataSpec(**body)
    except TypeError as exc:
        raise ConfigError(f"[data]: {exc}") from None


def from_environment(
    rank: int | None, rendezvous: str | None, world_size: int | None, provider: str
) -> tuple[int, str, int]:
    """Fill rank / rendezvous / data-party count from torchrun-style variables when not given."""
    env = os.environ
    if rendezvous is None and "MASTER_ADDR" in env and "MASTER_PORT" in env:
        rendezvous = f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    if rank is None and "RANK" in env:
        rank = int(env["RANK"])
    if world_size is None and "WORLD_SIZE" in env:
        world_size = int(env["WORLD_SIZE"]) - (1 if provider.upper() == "TTP" else 0)
    missing = [
        n
        for n, v in (
            ("--rank or RANK", rank),
            ("--rendezvous or MASTER_ADDR/MASTER_PORT", rendezvous),
            ("--world-size, WORLD_SIZE or [run] parties", world_size),
        )
        if v is None
    ]
    if missing:
        raise ConfigError(
            expected_got(
                "process identity",
                "rank, rendezvous and world size",
                "missing " + ", ".join(missing),
            )
        )
    return rank, rendezvous, world_size


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
        if not any(k in str(exc) for k in ("number of features", "classes", "label of sequence")):
            return  # the demo's shape: a bad value, length or file, reported as such by the intake
    where = f"{config_file} has no [data] section" if config_file else "no run file (--config)"
    msg = expected_got(
        f"data declaration for --data {data_file}",
        f"a [data] section in the run file (--config) with {DATA_KEYS}, agreed by all parties",
        where,
        "add the [data] section printed above",
    )
    raise MissingDataDeclaration(msg, data_template(data_file))


def data_template(data_file: str) -> str:
    """A [data] section to paste into the run file: shapes and class names from this party's
    own file when it is a readable .ts file, bounds as placeholders (they must be PUBLIC)."""
    frame = "1                    # time steps per model input; a long series of few features: 5-10"
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
            "# then check the settings on your own rows, with nothing shared: mpcrnn rehearse "
            "--config run.toml --data " + str(data_file),
        ]
    )
