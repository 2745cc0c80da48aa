"""The released model file: written by a receiving party, read by ``mpcrnn predict``.

One format, written and read here only.  A ``torch.save`` of a plain dict (loaded back with
``weights_only=True``: no code runs on load)::

    {"model_config": asdict(ModelConfig), "activation": asdict(ActivationConfig),
     "spec": asdict(DataSpec), "state_dict": {name: float32 tensor}, "run_id": str}

``run_id`` is the identity of the run that trained it (the one its checkpoints carry; absent
in files of releases before it).

The state dict holds torch's names and shapes (``weight_ih_l0``, ..., ``fc.weight``,
``fc.bias``), so it loads into ``torch.nn.GRU/LSTM/RNN`` + ``nn.Linear``.  Reading checks every
part and raises one :class:`DataError` line naming the file and what was expected: a file that
is not a model, a dict with missing or extra parts, wrong tensor shapes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path

import torch

from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.declaration import DataSpec
from protocols.errors import ConfigError, DataError, expected_got

PARTS = ("model_config", "activation", "spec", "state_dict")
OPTIONAL = ("run_id",)
MAX_MODEL_BYTES = 256 << 20  # a W1 model is 20 KB; bounds what a stray path makes us read


def write_model_file(
    path: str | Path,
    model: ModelConfig,
    activation: ActivationConfig,
    spec: DataSpec,
    params: dict[str, torch.Tensor],
    run_id: str = "",
) -> dict[str, torch.Tensor]:
    """Write atomically (a temporary name, then rename): no partial file is ever final.
    Returns the weights as written (float64 values of the float32 tensors), i.e. exactly what
    :func:`read_model_file` will load."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    state = {k: v.float() for k, v in params.items()}
    torch.save(
        {
            "model_config": asdict(model),
            "activation": asdict(activation),
            "spec": asdict(spec),
            "state_dict": state,
            "run_id": str(run_id),
        },
        tmp,
    )
    os.replace(tmp, path)
    return {k: v.double() for k, v in state.items()}


def read_model_file(path: str | Path) -> tuple[ModelConfig, DataSpec, torch.nn.Module]:
    """(model config, data declaration, the torch model in float64) from a model file."""
    from mpcrnn.model import TorchSequenceModel, export_state_dicts

    where = str(path)
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise DataError(expected_got(where, "a readable model file", type(exc).__name__)) from None
    if size > MAX_MODEL_BYTES:
        raise DataError(
            expected_got(f"{where}: size", f"at most {MAX_MODEL_BYTES} bytes", f"{size} bytes")
        )
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign bytes
        raise DataError(
            expected_got(
                where,
                "an mpcrnn model file (torch.save of a dict)",
                f"a file torch cannot load ({type(exc).__name__})",
            )
        ) from None
    if not isinstance(blob, dict) or not set(PARTS) <= set(blob) <= set(PARTS + OPTIONAL):
        got = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise DataError(expected_got(where, f"a dict of {', '.join(PARTS)}", got))
    if not isinstance(blob.get("run_id", ""), str):
        raise DataError(expected_got(f"{where}: run_id", "a string", "another value"))
    model = _dataclass(ModelConfig, blob["model_config"], where, "model_config")
    _dataclass(ActivationConfig, blob["activation"], where, "activation")
    spec_d = blob["spec"]
    if isinstance(spec_d, dict):
        spec_d = {k: tuple(v) if isinstance(v, list) else v for k, v in spec_d.items()}
    spec = _dataclass(DataSpec, spec_d, where, "spec")
    try:
        model.validate()
    except ConfigError as exc:
        raise DataError(f"{where}: model_config: {exc}") from None
    state = blob["state_dict"]
    want = {k: tuple(v.shape) for k, v in _names(TorchSequenceModel(model)).items()}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(expected_got(f"{where}: state_dict", "a dict of tensors", "another value"))
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != want:
        bad = sorted(set(want) ^ set(got)) or sorted(k for k in want if want[k] != got[k])
        raise DataError(
            expected_got(
                f"{where}: state_dict",
                f"torch's tensors of this {model.cell} with their shapes",
                f"differences at {', '.join(bad[:4])}",
            )
        )
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise DataError(expected_got(f"{where}: state_dict", "finite weights", "NaN or inf"))
    return model, spec, export_state_dicts(model, state).double()


def _names(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state-dict names the model file uses: the RNN's own, ``fc.`` for the head (and
    ``embedding.weight`` first for text)."""
    out = {"embedding.weight": module.embedding.weight} if module.cfg.embedding_dim else {}
    out.update(module.rnn.state_dict())
    out.update({f"fc.{k}": v for k, v in module.fc.state_dict().items()})
    return out


def _dataclass(cls, value, where: str, part: str):
    names = {f.name for f in fields(cls)}
    if not isinstance(value, dict) or not set(value) <= names:
        raise DataError(
            expected_got(f"{where}: {part}", f"a dict of {cls.__name__} fields", "another value")
        )
    try:
        return cls(**value)
    except (ConfigError, TypeError, ValueError) as exc:
        raise DataError(
            f"{where}: {part}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
