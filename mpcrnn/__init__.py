"""mpcrnn: train Elman RNN, GRU and LSTM models on secret-shared data (CrypTen MPC).

Modules: ``data`` (local intake and validation), ``config`` (frozen run configuration),
``backend`` (the same cell math on plaintext tensors or on shares), ``cells`` (RNN/GRU/LSTM
forward and hand-derived BPTT), ``train`` (loss, optimizer, the training loop), ``export``
(torch state_dicts).  Nothing runs at import time.
"""

__version__ = "0.1.0"
