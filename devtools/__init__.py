"""Development tooling for pbx_bridge: never installed, never imported by the bridge.

- `devtools.sandbox`: the development/test Asterisk (a Debian sid root built with
  mmdebstrap, Asterisk chrooted in it with the checkout's `asterisk-conf/`).
- `devtools.phones`: real SIP phones (baresip in that root) for tests, the bench and
  the demo.

Command line, from the checkout's root: `python -m devtools sandbox ...` and
`python -m devtools phone ...` (see `python -m devtools --help`). It lives beside
`bench/` and `tests/`, outside the `pbx_bridge` package, so the wheel and the image
hold only what runs next to a PBX; `tests/unit/test_runtime_package.py` keeps it so.
"""
