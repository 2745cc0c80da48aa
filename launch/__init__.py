"""Process wiring and the command line: top layer (imports mpcrnn and protocols, never the reverse)."""
