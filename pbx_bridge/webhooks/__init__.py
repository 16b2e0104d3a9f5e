"""Webhooks (CONTRACT section 7, "Subscriptions"): VoipNow Call Events subscriptions
and ours (subscriptions.py), the durable outbox (outbox.py), the SSRF guard (guard.py),
Standard Webhooks signing (signing.py), VoipNow's GET fields (voipnow.py), the sender
(sender.py: one worker per receiver, backoff with jitter) and the glue the composition
root plugs into the events feature (service.py)."""
