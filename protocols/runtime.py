"""The one door through which mpcrnn first imports CrypTen.

:func:`load_crypten` is the first import of CrypTen in every process (``init_party`` calls it
before anything else touches CrypTen).  After it, CrypTen's own types and singletons are used,
with a plain ``import crypten...`` inside the function that needs them, in these modules and no
others (``mpcrnn`` and ``launch`` never import CrypTen; ``tests/test_runtime.py`` checks the
list)::

    protocols/runtime.py                 this module
    protocols/network/communicator.py    CrypTen's communicator interface, over our links
    protocols/network/parties.py         installs the communicator
    protocols/randomness/crypten_rng.py  CrypTen's draws from AES-CTR streams, its PRZS seeds
    protocols/randomness/streams.py      CrypTen's TTP client generator (the dealer's seed)
    protocols/randomness/triples.py      CrypTen's trusted first party (TFP simulation)
    protocols/randomness/he_crypten.py   CrypTen's tuple-provider interface (HE)
    protocols/randomness/dealer.py       CrypTen's TTP server handlers
    protocols/arithmetic/sharing.py      CrypTen's shared tensor types (wrapping our shares)
    protocols/arithmetic/comparison.py   CrypTen's binary circuits (sign bit, argmax)

It does four things, once per process, and only when called (nothing happens at import time):

1. **torch 2.x compatibility.**  CrypTen 0.4.1's ``crypten.nn.onnx_converter`` imports
   ``torch.onnx._internal.registration.registry`` at module load; that module is gone from
   torch 2.13.  We register a stand-in module in ``sys.modules`` before the first
   ``import crypten``.  site-packages is never modified.  Consequence, stated plainly:
   CrypTen's ONNX import (``crypten.nn.from_pytorch``/``from_onnx``) does not work; mpcrnn does
   not use it.
2. **Fast configuration.**  CrypTen reads its omegaconf config on every operation (hundreds of
   slow omegaconf lookups in a training step).  We swap the class of the global
   ``crypten.config.cfg`` object for :class:`_SnapshotConfig`, which keeps the omegaconf object
   as the source of truth but serves reads from a plain-attribute snapshot rebuilt whenever the
   config changes (``load_config``, ``set_config``, attribute assignment, ``temp_override``).
   Results are identical; only the lookup cost changes.  :func:`use_fast_config` turns it on or
   off (the microbenchmark measures both in one run).
3. **Cryptographic draws.**  CrypTen's secret random draws (PRZS masks, its TTP requests) come
   from AES-256-CTR streams instead of torch's Mersenne Twister
   (:mod:`protocols.randomness.crypten_rng`).
4. **Clear errors.**  Missing or wrong-version torch/CrypTen raise :class:`InstallError` saying
   how to install (``make venv``).
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

from protocols.errors import InstallError, expected_got

SUPPORTED_TORCH = "2.13."
SUPPORTED_CRYPTEN = "0.4.1"
_INSTALL_HINT = (
    "Run `make venv` in the mpcrnn checkout (it installs torch==2.13.0 and crypten==0.4.1 "
    "--no-deps into .venv), then use .venv/bin/python or .venv/bin/mpcrnn"
)


def _check_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        raise InstallError(f"torch is not installed. {_INSTALL_HINT}") from exc
    if not torch.__version__.startswith(SUPPORTED_TORCH):
        raise InstallError(
            expected_got("torch version", f"{SUPPORTED_TORCH}x", torch.__version__, _INSTALL_HINT)
        )
    return torch


def _install_onnx_registration_shim() -> None:
    """Provide ``torch.onnx._internal.registration`` if torch no longer has it."""
    name = "torch.onnx._internal.registration"
    if name in sys.modules:
        return
    try:
        __import__(name)
        return
    except ImportError:
        pass
    shim = types.ModuleType(name)
    shim.__doc__ = "mpcrnn stand-in: CrypTen 0.4.1 imports `registry` from here at load time."
    shim.registry = None  # only used by CrypTen's ONNX export path, which mpcrnn does not use
    sys.modules[name] = shim


@functools.cache
def load_crypten() -> Any:
    """Import CrypTen with the compatibility step and the fast config applied; return the module.

    Once per process (cached): the shim and the fast config patch CrypTen's process-wide
    module and its global ``cfg`` object, which every session of the process shares.

    Raises:
        InstallError: torch or CrypTen missing or at an unsupported version (not cached: the
            next call tries again).
    """
    _check_torch()
    _install_onnx_registration_shim()
    try:
        import crypten
    except ImportError as exc:
        raise InstallError(f"CrypTen could not be imported ({exc}). {_INSTALL_HINT}") from exc
    if getattr(crypten, "__version__", None) != SUPPORTED_CRYPTEN:
        raise InstallError(
            expected_got("CrypTen version", SUPPORTED_CRYPTEN, crypten.__version__, _INSTALL_HINT)
        )
    use_fast_config(True)
    from protocols.randomness import crypten_rng

    crypten_rng.install()  # CrypTen's secret draws from AES-CTR streams, not Mersenne Twisters
    return crypten


# --------------------------------------------------------------------------------------------
# Fast configuration
# --------------------------------------------------------------------------------------------


class _Section:
    """A plain-attribute view of one config section; assignment writes through to the root."""

    __slots__ = ("_root", "_path", "__dict__")

    def __init__(self, root: Any, path: str, values: dict) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_path", path)
        for key, value in values.items():
            if isinstance(value, dict):
                value = _Section(root, f"{path}.{key}", value)
            self.__dict__[key] = value

    def __setattr__(self, name: str, value: Any) -> None:
        self._root.__setattr__(f"{self._path}.{name}", value)

    def __getitem__(self, name: str) -> Any:
        result: Any = self
        for key in name.split("."):
            result = getattr(result, key)
        return result

    def __repr__(self) -> str:
        return f"_Section({self._path}: {sorted(self.__dict__)})"


@functools.cache
def _snapshot_class() -> type:
    """The snapshot subclass of CrypTen's config class, defined once per process (the class of
    CrypTen's one global ``cfg`` object is swapped for it and back)."""
    from crypten.config.config import CrypTenConfig
    from omegaconf import OmegaConf

    class _SnapshotConfig(CrypTenConfig):
        """CrypTenConfig whose reads come from a plain snapshot of the omegaconf tree.

        ``self.config`` (omegaconf) stays the source of truth; every write goes through it and
        rebuilds the snapshot, so ``temp_override`` and ``load_config`` behave exactly as before.
        """

        __getattribute__ = object.__getattribute__  # drop CrypTenConfig's slow override

        def _rebuild(self) -> None:
            plain = OmegaConf.to_container(object.__getattribute__(self, "config"), resolve=True)
            for key, value in plain.items():
                if isinstance(value, dict):
                    value = _Section(self, key, value)
                object.__setattr__(self, key, value)
            object.__setattr__(self, "_snapshot_keys", tuple(plain))

        def __getattr__(self, name: str) -> Any:  # only reached for dotted or unknown names
            if name.startswith("__"):
                raise AttributeError(name)
            result: Any = self
            for key in name.split("."):
                result = object.__getattribute__(result, key)
            return result

        def __getitem__(self, name: str) -> Any:
            return self.__getattr__(name)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "config":
                object.__setattr__(self, "config", value)
                self._rebuild()
                return
            update = OmegaConf.from_dotlist([f"{name}={value}"])
            self.config = OmegaConf.merge(object.__getattribute__(self, "config"), update)

    return _SnapshotConfig


def use_fast_config(enabled: bool) -> None:
    """Switch CrypTen's global ``cfg`` between the snapshot (fast) and the original (slow) class.

    Process-wide by nature: CrypTen reads its one ``cfg`` object everywhere."""
    from crypten.config import cfg
    from crypten.config.config import CrypTenConfig

    snapshot = _snapshot_class()
    if enabled and type(cfg) is not snapshot:
        object.__setattr__(cfg, "__class__", snapshot)
        cfg._rebuild()
    elif not enabled and type(cfg) is snapshot:
        for key in object.__getattribute__(cfg, "_snapshot_keys"):
            object.__delattr__(cfg, key)
        object.__setattr__(cfg, "__class__", CrypTenConfig)


def fast_config_enabled() -> bool:
    from crypten.config import cfg

    return type(cfg) is _snapshot_class()
