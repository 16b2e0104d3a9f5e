"""The thin core: the AMI link, the call tracker, readiness and resync (link.py), and
the interface features plug into (feature.py)."""
