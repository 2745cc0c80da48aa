"""Public demo data shipped with mpcrnn (read through :mod:`mpcrnn.data`, never imported as
code)."""
