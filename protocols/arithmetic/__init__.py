"""Arithmetic on shares: fixed point, sharing and opening, truncation, Beaver products,
polynomial activations, comparisons, softmax, norm clipping, Adam, secure averaging and joint
noise."""
