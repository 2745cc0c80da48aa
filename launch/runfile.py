"""The run configuration file (TOML) that every party of a run shares, and the environment.

Everything in it is public and hashed (:meth:`mpcrnn.secure.RunConfig.digest`); parties with
different files stop before sharing anything.  Per-party settings (rank, data file, output
folder, rendezvous) are command-line flags.  Example (every key optional; defaults shown)::

    [run]
    parties = 3              # data parties (the dealer is not counted)
    provider = "ttp"         # ttp | tfp (insecure simulation)
    reveal_to = []           # ranks receiving the final weights; empty: all
    reveal_metrics = false
    mode = "mpc"             # mpc | fedavg (local training + secure averaging; see [fedavg])

    [model]
    cell = "gru"             # rnn | gru | lstm
    hidden = 32
    layers = 1

    [train]
    epochs = 6
    batch_size = 32
    lr = 0.2
    momentum = 0.9
    weight_decay = 0.0
    clip_value = 1.0
    clip_norm = 0.0
    seed = 0

    [fedavg]                 # only with mode = "fedavg"
    rounds = 10
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

Environment (torchrun / schedulers): ``MASTER_ADDR`` + ``MASTER_PORT`` give the rendezvous
``tcp://MASTER_ADDR:MASTER_PORT``, ``RANK`` the rank, ``WORLD_SIZE`` the number of processes
(data parties + 1 dealer with TTP).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields

from mpcrnn import data as D
from mpcrnn.config import ActivationConfig, AdversarialConfig, DPConfig, FedAvgConfig, ModelConfig, TrainConfig
from mpcrnn.secure import RunConfig
from protocols.errors import ConfigError, expected_got

SECTIONS = {
    "run": {"parties", "provider", "reveal_to", "reveal_metrics", "mode"},
    "model": {"cell", "hidden", "layers"},
    "train": {f.name for f in fields(TrainConfig)},
    "data": {f.name for f in fields(D.DataSpec)},
    "fedavg": {f.name for f in fields(FedAvgConfig)},
    "dp": {"epsilon", "noise", "delta", "clip", "accountant"},
    "adversarial": {f.name for f in fields(AdversarialConfig)},
}
ADV_FLAGS = {"adversarial": "method", "adv_eps": "eps", "adv_steps": "steps", "adv_alpha": "alpha", "adv_mix": "mix"}


MAX_RUN_FILE_BYTES = 1 << 20  # a run file is a few hundred bytes; bounds what a stray path reads


def read_file(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_RUN_FILE_BYTES + 1)
        if len(text) > MAX_RUN_FILE_BYTES:
            raise ConfigError(expected_got(f"{path}: size", f"at most {MAX_RUN_FILE_BYTES} bytes (a run config file)", "more"))
        raw = tomllib.loads(text.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: expected a readable run config file, got {type(exc).__name__}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(expected_got(path, "UTF-8 TOML text", f"undecodable bytes at byte offset {exc.start}")) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: expected valid TOML, got {str(exc).splitlines()[0]}") from None
    for section, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(expected_got(f"{path}: '{section}'", "a [section] table", "a top-level value"))
        if section not in SECTIONS:
            raise ConfigError(expected_got(f"{path}: section", "one of " + ", ".join(f"[{s}]" for s in SECTIONS), f"[{section}]"))
        unknown = set(body) - SECTIONS[section]
        if unknown:
            raise ConfigError(expected_got(f"{path}: keys of [{section}]", ", ".join(sorted(SECTIONS[section])), ", ".join(sorted(unknown))))
    return raw


def build(raw: dict, overrides: dict) -> RunConfig:
    """RunConfig from the file's sections, then explicit command-line overrides (flat keys)."""
    run = {"parties": 3, "provider": "ttp", "reveal_to": [], "reveal_metrics": False, "mode": "mpc", **raw.get("run", {})}
    model = {"cell": "gru", "hidden": 32, "layers": 1, **raw.get("model", {})}
    train = dict(raw.get("train", {}))
    fedavg = dict(raw.get("fedavg", {}))
    dp = dict(raw.get("dp", {}))
    adversarial = dict(raw.get("adversarial", {}))
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ADV_FLAGS:  # --adversarial, --adv-eps, --adv-steps, --adv-alpha, --adv-mix
            adversarial[ADV_FLAGS[key]] = value
            continue
        if key.startswith("dp_"):  # --dp-epsilon, --dp-noise, --dp-delta, --dp-clip
            dp[key[3:]] = value
            continue
        if key in run:
            run[key] = value
        elif key in model:
            model[key] = value
        elif key in SECTIONS["fedavg"]:
            fedavg[key] = value
        else:
            train[key] = value
    spec = _spec(raw.get("data"))
    try:
        tc = TrainConfig(**{"epochs": 6, **train})
    except TypeError as exc:
        raise ConfigError(f"train settings: {exc}") from None
    try:
        fa = FedAvgConfig(**fedavg)
    except TypeError as exc:
        raise ConfigError(f"[fedavg]: {exc}") from None
    try:
        cfg = RunConfig(
            model=ModelConfig(cell=model["cell"], input_size=spec.n_features, hidden_size=int(model["hidden"]),
                              num_layers=int(model["layers"]), num_classes=len(spec.classes)),
            activation=ActivationConfig(), train=tc, spec=spec, world_size=int(run["parties"]),
            provider=str(run["provider"]).upper(), reveal_to=tuple(run["reveal_to"]),
            reveal_metrics=bool(run["reveal_metrics"]), mode=str(run["mode"]), fedavg=fa, dp=_dp(dp),
            adversarial=AdversarialConfig(**adversarial),
        )
        cfg.validate()  # here, in the launcher, before any process starts
    except (TypeError, ValueError) as exc:  # a value of the wrong type in the run file
        raise ConfigError(f"run settings: expected values of the documented types, got {_first_line(exc)}") from None
    return cfg


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _dp(section: dict) -> DPConfig:
    """[dp] / --dp-* -> DPConfig (validated here, so a bad value stops the CLI before any launch)."""
    def num(key):
        if section.get(key) is None:
            return None
        try:
            return float(section[key])
        except (TypeError, ValueError):
            raise ConfigError(expected_got(f"[dp] {key}", "a number", type(section[key]).__name__)) from None

    enabled = section.get("epsilon") is not None or section.get("noise") is not None
    cfg = DPConfig(enabled=enabled, clip=num("clip") if section.get("clip") is not None else 1.0,
                   noise_multiplier=num("noise"), target_epsilon=num("epsilon"),
                   delta=num("delta") if section.get("delta") is not None else 1e-5,
                   accountant=str(section.get("accountant", "rdp")))
    if not enabled and set(section) - {"accountant"}:
        raise ConfigError(expected_got("DP settings", "--dp-epsilon or --dp-noise with --dp-delta/--dp-clip",
                                       ", ".join(sorted(set(section))) + " without either"))
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


def from_environment(rank: int | None, rendezvous: str | None, world_size: int | None, provider: str) -> tuple[int, str, int]:
    """Fill rank / rendezvous / data-party count from torchrun-style variables when not given."""
    env = os.environ
    if rendezvous is None and "MASTER_ADDR" in env and "MASTER_PORT" in env:
        rendezvous = f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    if rank is None and "RANK" in env:
        rank = int(env["RANK"])
    if world_size is None and "WORLD_SIZE" in env:
        world_size = int(env["WORLD_SIZE"]) - (1 if provider.upper() == "TTP" else 0)
    missing = [n for n, v in (("--rank or RANK", rank), ("--rendezvous or MASTER_ADDR/MASTER_PORT", rendezvous),
                              ("--world-size, WORLD_SIZE or [run] parties", world_size)) if v is None]
    if missing:
        raise ConfigError(expected_got("process identity", "rank, rendezvous and world size", "missing " + ", ".join(missing)))
    return rank, rendezvous, world_size
