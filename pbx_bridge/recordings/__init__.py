"""The recordings catalog: one row per MixMonitor run, whoever started it (see feature.py).

Not to be confused with ``recording/``, the live-recording feature that starts, stops and
pauses MixMonitor."""
