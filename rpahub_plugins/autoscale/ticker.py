"""The greenlet that evaluates the autoscaler under the real server.

Only one hub process may scale: two would both start executors for the same queue.
On SQLite there is one worker; on PostgreSQL the scaler is the process holding an
advisory lock on a connection of its own, which the server releases if the process
dies. A process that loses the lock stops its local executors, because the new
scaler will start its own under the same robot ids.
"""

from __future__ import annotations

import logging

from rpahub_core import db as hubdb

log = logging.getLogger("rpahub.autoscale")

LOCK_KEY = 130202203


class Leadership:
    def __init__(self, hub):
        self.url = hub.settings.database_url
        self.postgres = hubdb.is_postgres(hub.db)
        self.conn = None
        self.held = False

    def check(self) -> bool:
        if not self.postgres:
            return True
        import psycopg

        try:
            if self.conn is None or self.conn.closed:
                self.conn, self.held = psycopg.connect(self.url, autocommit=True, connect_timeout=5), False
            if self.held:
                self.conn.execute("SELECT 1")  # a dropped connection released the lock
            else:
                self.held = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0])
        except psycopg.Error as exc:
            log.warning("autoscale leadership check failed: %s", exc)
            self.release()
        return self.held

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass
        self.conn, self.held = None, False


def spawn(hub, autoscaler, tick_s: float, local):
    """Start the loop; ``local()`` gives the local provider if it was ever used."""
    import gevent
    import gevent.event

    leadership = Leadership(hub)
    autoscaler.wake_event = gevent.event.Event()

    def loop():
        was_leader = False
        try:
            while True:
                autoscaler.wake_event.wait(timeout=tick_s)
                autoscaler.wake_event.clear()
                try:
                    leader = leadership.check()
                    if leader:
                        with hubdb.connection():
                            autoscaler.evaluate()
                    elif was_leader and local() is not None:
                        local().stop_all()
                    was_leader = leader
                except Exception as exc:  # one bad tick never stops scaling
                    hubdb.log_failure(log, "autoscale tick", exc)
                    gevent.sleep(1)
        finally:
            leadership.release()

    return gevent.spawn(loop)
