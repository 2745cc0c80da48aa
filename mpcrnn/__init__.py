"""mpcrnn: train Elman RNN, GRU and LSTM models on secret-shared data (CrypTen MPC).

Modules, from the data up: ``data`` (one party's intake: ``declaration``, ``readers``),
``config`` / ``config_modes`` (the frozen run configuration, the run file's vocabulary),
``settings`` (a setting declared once: run-file key, flag, help and default), ``backend`` (the
same cell math on plaintext tensors or on shares), ``cells`` (RNN/GRU/LSTM forward and
hand-derived BPTT),
``model`` (stacked layers, the head, torch's parameter names), ``train`` (optimizers and the
training loop), ``dp`` / ``dp_accounting`` (DP-SGD inside MPC), ``adversarial``, ``fedavg``,
``secure`` (one party's run: agree, share, train, reveal), ``checkpoint``, ``model_file`` (the
released model), ``report`` (the run report), ``rehearse``, ``attacks``, ``dp_release``.
Nothing runs at import time.
"""

__version__ = "0.1.0"
