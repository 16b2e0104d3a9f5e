"""`pbx-bridge doctor`: check a running PBX for everything the bridge relies on."""
