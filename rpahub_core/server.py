"""Run the hub under gunicorn with the gevent-websocket worker, started from Python."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from .config import Settings

WORKER = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"


class HubApplication(BaseApplication):
    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24 opens a control socket in $HOME; hubs side by side would share it.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        # Runs in each worker after gevent patched the standard library.
        from .app import create_app

        return create_app(self.settings)


def serve(settings: Settings, *, bind: str, workers: int, worker_connections: int) -> int:
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise SystemExit("rpahub: SQLite serves one worker; configure PostgreSQL (database.url) for more")
    options = {
        "bind": bind,
        "workers": workers,
        "worker_class": WORKER,
        "worker_connections": worker_connections,
        "timeout": settings.server.timeout,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log.level.lower(),
        "proc_name": f"rpahub:{settings.hub.name}",
        # Stop each worker's background work and give its connections back.
        "worker_exit": lambda arbiter, worker: getattr(getattr(worker, "wsgi", None), "hub", None)
        and worker.wsgi.hub.close(),
    }
    HubApplication(settings, options).run()
    return 0

