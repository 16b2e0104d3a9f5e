"""The live event stream (CONTRACT section 7, "Stream"; ``GET /uapi/events``).

hub.py: the `StreamHub`, a sink of the events feature that hands every stored event to
the connected clients' bounded queues and cuts a client that falls too far behind;
view.py: what one token may see (access rules, ``?types=``); resume.py: where a stream
starts (``Last-Event-ID``) and the history it replays first. The route is
api/stream.py.
"""
