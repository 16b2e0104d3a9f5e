"""The live-calls page (issue 12 item 5): static files served by the bridge under ``/ui``."""
