"""Several PBX nodes (issue 16): a node's link and its node-bound features
(`node.py`), their status for /readyz and `pbx-bridge nodes` (`status.py`, `cli.py`).
The routing rules are core/nodes.py's."""
