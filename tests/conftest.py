"""pytest configuration: one torch thread per process (2 shared cores thrash otherwise)."""

import os

os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)
