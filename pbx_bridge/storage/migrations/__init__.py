"""Alembic migrations, shipped inside the package and run by :mod:`pbx_bridge.storage.migrate`
(no alembic.ini). A new revision: copy the newest file in ``versions/``, give it the next number as
``revision`` and the newest as ``down_revision``; never edit a shipped one."""
