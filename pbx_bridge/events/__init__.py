"""Domain events (CONTRACT section 7): what happened to calls and recordings, one stream.

model.py: the Event; calls.py and recordings.py: pure producers (tracker and catalog
changes in, events out); store.py: the bounded history in the database; feature.py:
the feature plugged into the PBX link and the recordings catalog, which numbers the
events, writes them (with their outbox rows) and hands them to the listeners.
"""
