"""Joining a view's call from another phone: BargeIn, Whisper, Monitor (ChanSpy)."""
