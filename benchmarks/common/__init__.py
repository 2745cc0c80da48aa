"""What the benchmark scripts share: flags, the results writer, data, runs, the torch yardstick.

Every script in this folder is run as a file (``python benchmarks/<script>.py``), so this
folder is ``sys.path[0]`` and ``import common`` finds this package; no script imports another
script or anything under ``tests/`` (the multi-process runner is :mod:`launch.local_parties`).

* Flags: :func:`parent` (``--quick``, ``--smoke``, ``--out``, ``--seeds``) and :func:`parse`.
* Results: :func:`write_results` writes ``<out>/<name>.md`` (a header naming the command, the
  commit, the date, the machine and its load, then the table) and ``<out>/<name>.json``
  (``{"provenance": ..., "data": ...}``; :func:`read_results` reads it back).  A result is
  named after the script that writes it (``harness``, ``learning_rows``, ...); the files named
  after a topic in ``benchmarks/results/`` (``w1.md``, ``learning.md``, ...) are history.
  ``--out`` defaults to ``benchmarks/results/`` for a full run and ``bench-out/`` (ignored by
  git) for ``--quick`` and ``--smoke``, so a short run never replaces a full one.
* Data: the Japanese Vowels and GunPoint declarations, the 50/30/20 split among 3 parties.
* Tecator's demo: :func:`tecator_demo` (its configuration, party files and pooled rows).
* Runs: :func:`launch_parties` (one run through the launcher), :func:`pooled_accuracy`,
  :func:`mirror` (the plaintext mirror), the party functions of one training step
  (:func:`mpcrnn_step`, :func:`naive_step`, :func:`text_step`) for
  :func:`launch.local_parties.run_parties`.
* The torch yardstick: :func:`torch_loop` (the one torch training loop), with
  :func:`scheduled_batches` and :func:`torch_accuracy`.
"""

from .data import (
    EPOCHS,
    GUNPOINT,
    gunpoint_spec,
    launch_parties,
    load,
    mirror,
    mirror_on_party_order,
    party_parts,
    pooled_accuracy,
    run_config,
    tecator_demo,
)
from .results import (
    RESULTS,
    ROOT,
    SCRATCH,
    git_commit,
    parent,
    parse,
    provenance,
    read_results,
    write_results,
)
from .steps import mpcrnn_step, naive_step, shared_batch, text_step
from .yardstick import scheduled_batches, torch_accuracy, torch_loop

__all__ = [
    "EPOCHS",
    "GUNPOINT",
    "RESULTS",
    "ROOT",
    "SCRATCH",
    "git_commit",
    "gunpoint_spec",
    "launch_parties",
    "load",
    "mirror",
    "mirror_on_party_order",
    "mpcrnn_step",
    "naive_step",
    "parent",
    "parse",
    "party_parts",
    "pooled_accuracy",
    "provenance",
    "read_results",
    "run_config",
    "tecator_demo",
    "scheduled_batches",
    "text_step",
    "shared_batch",
    "torch_accuracy",
    "torch_loop",
    "write_results",
]
