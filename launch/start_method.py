"""How mpcrnn starts the processes of a run on one machine: a fork server with torch and numpy
already imported where the platform has one (Linux), else ``spawn``.

A spawned process imports torch before it does anything else: ~2.3 CPU s here, for each party
and the dealer of every run.  Python's ``forkserver`` start method starts ONE clean server
process (a fresh interpreter, like ``spawn``), which imports the modules named in
:data:`PRELOAD` and nothing else, then forks each new process from that state.  So a party
starts as a spawned one would, its imports done:

* nothing of the parent is inherited: no CrypTen state, no seed, no key, no socket, no thread
  (the server runs no code but imports); each process still draws its own randomness after it
  starts (``os.urandom``; no global numpy or torch generator is used for secrets);
* the process's arguments (an identity's key among them) travel over a pipe to the child, as
  with ``spawn``, never through a file;
* the environment is the server's, taken when it starts: callers set the BLAS thread
  variables before the first process starts, as they did for ``spawn``;
* the server exits with the process that started it.
"""

from __future__ import annotations

import multiprocessing as mp

PRELOAD = ("numpy", "torch")


def process_context():
    """The multiprocessing context for a run's local processes (module docstring)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx
