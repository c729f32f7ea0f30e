"""Built-in plugins. Each is also declared in the ``rpahub`` entry-point group of
``setup.py``; this tuple lets tests build a plugin manager without entry points
(so third-party plugins installed on the machine never leak into a test run).
A test checks the two lists agree.
"""

DEFAULT_PLUGINS = (
    ("storage_sqlite", "rpahub_plugins.storage_sqlite"),
    ("storage_postgres", "rpahub_plugins.storage_postgres"),
    ("auth_local", "rpahub_plugins.auth_local"),
    ("audit_log", "rpahub_plugins.audit_log"),
    ("system", "rpahub_plugins.system"),
    ("demo", "rpahub_plugins.demo"),
    ("executors", "rpahub_plugins.executors"),
    ("protocol_ws", "rpahub_plugins.protocol_ws"),
    ("protocol_http", "rpahub_plugins.protocol_http"),
    ("dispatch", "rpahub_plugins.dispatch"),
    ("sched_policies", "rpahub_plugins.sched_policies"),
    ("schedules", "rpahub_plugins.schedules"),
    ("flows", "rpahub_plugins.flows"),
    ("autoscale", "rpahub_plugins.autoscale"),
    ("approvals", "rpahub_plugins.approvals"),
    ("share", "rpahub_plugins.share"),
    ("design", "rpahub_plugins.design"),
    ("designers", "rpahub_plugins.designers"),
    ("images", "rpahub_plugins.images"),
    ("auth_oidc", "rpahub_plugins.auth_oidc"),
    ("ops", "rpahub_plugins.ops"),
    ("operations", "rpahub_plugins.operations"),
    ("console", "rpahub_plugins.console"),
)
