"""The rpahub plugin hooks.

Every feature of the hub, built in or third party, is a plugin implementing some of
these hooks. A plugin is a module (or object) registered under the ``rpahub``
entry-point group; it marks its implementations with :data:`rpahub_core.hookimpl`.

The docstring of each hook is its contract. ``docs/plugin_hooks.md`` documents every
hook with an example, and the test suite fails when a hook lacks either a section
there or a test of its own.

Hooks receive *registries* (``routes``, ``migrations``, ``permissions`` ...) to add
to, rather than returning loose values, so the core can check what plugins give.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    import falcon
    import peewee

    from .auth import Principal
    from .bus import Bus, Event
    from .cli import Commands
    from .config import Settings
    from .hub import Hub
    from .migrations import MigrationRegistry
    from .permissions import PermissionCatalogue
    from .web import Routes

hookspec = pluggy.HookspecMarker("rpahub")


# -- lifecycle ---------------------------------------------------------------


@hookspec
def rpahub_startup(hub: Hub) -> None:
    """Called once per process after the database is open and migrated.

    Start background work here (greenlets, tickers). Anything started must stop in
    :func:`rpahub_shutdown`. Exceptions propagate and abort start-up, naming the plugin.
    """


@hookspec
def rpahub_shutdown(hub: Hub) -> None:
    """Called once per process before it exits: stop what ``rpahub_startup`` began."""


@hookspec
def rpahub_prepare(hub: Hub) -> list[str] | None:
    """Seed what must exist before the hub serves; return notices for the operator.

    Called after migrations by ``rpahub init``, ``rpahub migrate`` and ``rpahub serve``
    (once, before workers start), never per worker. The built-in ``auth_local``
    creates the first administrator here and returns its one-time password, which
    the command prints once. Must be idempotent.
    """


@hookspec
def rpahub_register_commands(commands: Commands) -> None:
    """Add ``rpahub`` sub-commands: ``commands.add("licence", handler, help=..., configure=...)``.

    ``configure(parser)`` adds the command's arguments to its ``argparse`` parser.

    ``handler(hub, args)`` runs with an opened hub and returns the exit status.
    """


# -- configuration -----------------------------------------------------------


@hookspec
def rpahub_config_defaults() -> dict[str, Any] | None:
    """Return ``{"plugin_name": {key: default, ...}}`` for the plugin's own section.

    A plugin's settings live under ``[plugins.<name>]`` in ``rpahub.toml`` and can be
    overridden by ``RPAHUB_PLUGINS__<NAME>__<KEY>`` environment variables. Defaults
    returned here are merged under what the file and environment say.
    """


# -- web ---------------------------------------------------------------------


@hookspec
def rpahub_register_routes(routes: Routes, hub: Hub) -> None:
    """Add Falcon resources to the hub's single WSGI application.

    Call ``routes.add("/api/v1/things", ThingsResource(hub))``. Responders of any route
    under ``/api/v1/`` must be declared with :func:`rpahub_core.web.operation`, naming
    the permission they need; an undeclared responder is refused (deny by default).
    The declarations also produce ``/api/openapi.json``.
    ``routes.add_middleware(component)`` adds a Falcon middleware component (metrics,
    rate limits); it runs after the core's authentication and authorisation.
    """


# -- storage -----------------------------------------------------------------


@hookspec(firstresult=True)
def rpahub_open_database(settings: Settings) -> peewee.Database | None:
    """Return an unconnected peewee ``Database`` for ``settings.database.url``.

    The first plugin that recognises the URL scheme answers; others return ``None``.
    Built in: ``sqlite:///path`` (WAL, the embedded default) and
    ``postgresql://...`` (multi-node). The core binds the returned database to the
    model proxy in :mod:`rpahub_core.db`.
    """


@hookspec
def rpahub_migrations(migrations: MigrationRegistry) -> None:
    """Register forward-only schema steps for the plugin's tables.

    ``migrations.add("share", 1, create_tables(App, Subscription))`` — each component
    has its own version counter in the ``schema_version`` table; steps run in order,
    once, inside a transaction, on start and by ``rpahub migrate``. Never edit a
    released step: add the next one.
    """


# -- events ------------------------------------------------------------------


@hookspec(firstresult=True)
def rpahub_make_bus(hub: Hub) -> Bus | None:
    """Return the publish/subscribe bus shared by the plugins of this process.

    The default is in-process. A multi-node deployment replaces it (for example with
    PostgreSQL LISTEN/NOTIFY) so an event reaches subscribers in every hub process.
    """


@hookspec
def rpahub_on_event(event: Event, hub: Hub) -> None:
    """Observe every event published on the bus, after its transaction committed.

    Events describe what happened (``run.finished``, ``executor.online``,
    ``audit.recorded``); they feed analytics, alerts and tier reporting. A failing
    observer is logged and never affects the publisher or the other observers.
    """


# -- auth --------------------------------------------------------------------


@hookspec(firstresult=True)
def rpahub_authenticate(req: falcon.Request, hub: Hub) -> Principal | None:
    """Return who sent ``req``, or ``None`` when this plugin cannot tell.

    People are :class:`rpahub_core.auth.UserPrincipal`, robots
    :class:`rpahub_core.auth.RobotPrincipal`; they never share credentials (SEC-1).
    Raise :class:`rpahub_core.errors.Unauthorized` for credentials that are present
    but wrong, so a later plugin cannot accept them.
    """


@hookspec
def rpahub_permissions(permissions: PermissionCatalogue) -> None:
    """Declare the permissions this plugin's operations check.

    ``permissions.add("share.publish", "Publish an app to the marketplace")``. Roles
    are built from this catalogue; an operation naming an undeclared permission fails
    at start-up.
    """


@hookspec
def rpahub_audit(entry: dict[str, Any], hub: Hub) -> None:
    """Persist one audit entry (every implementation is called).

    ``entry`` has ``actor``, ``principal_type`` (``user``/``robot``/``system``),
    ``action``, ``target``, ``result``, ``detail``, ``source`` and ``at``. Called by
    :meth:`rpahub_core.hub.Hub.audit`, the single audit path, inside the transaction
    of the change it records when there is one.
    """


# -- executor protocol -------------------------------------------------------


@hookspec
def rpahub_executor_protocols(hub: Hub) -> list[Any] | None:
    """Return executor transports this plugin provides (WebSocket, HTTP, ...).

    Each transport turns the wire protocol of T/CES 130 Appendix A into calls on one
    session abstraction, so dispatch never knows how a robot is connected.
    """



# -- scheduling --------------------------------------------------------------


@hookspec(firstresult=True)
def rpahub_select_executor(run: Any, candidates: list[Any], hub: Hub) -> Any | None:
    """Choose one executor from ``candidates`` for ``run``, or ``None`` to pass.

    Built-in policies: least-loaded, round-robin, label/vendor affinity. The first
    policy that answers wins; policies usually look at ``run.policy`` first.
    """


@hookspec
def rpahub_admit_run(submission: dict[str, Any], hub: Hub) -> dict[str, Any] | None:
    """Vet a run the dispatcher is asked to queue, before anything is stored.

    ``submission`` has ``package_id``, ``executor_id``, ``pool``, ``labels`` and
    ``supplier`` (what the run targets). Raise a hub error (``Conflict``, ``Forbidden``
    ...) to refuse it: the caller gets its message as ``resultHint`` and nothing is
    queued. Otherwise return ``None``, or a dict proposing the run's plan: any of
    ``max_attempts``, ``backoff_s`` and ``policy`` (``None`` values are ignored). The
    request's own values win over these, these over the pool's policy, and that over
    the hub's settings. The ``share`` plugin implements it: a version of a library app
    runs anywhere but the test pool only once approved (SEC-5), and the app's retry and
    scheduling policy become the defaults of its runs.
    """


@hookspec
def rpahub_scale_pool(pool: Any, desired: int, hub: Hub) -> int | None:
    """Bring ``pool`` towards ``desired`` executors; return how many now exist.

    Called by the autoscaler on every tick (also when the size does not change, so a
    provider replaces executors that died). ``pool`` has ``name``, ``provider``, ``min``
    and ``max``; answer ``None`` unless ``pool.provider`` is yours. Never stop an
    executor that holds a run.
    """


# -- cloud resources ---------------------------------------------------------


@hookspec
def rpahub_cloud_providers(hub: Hub) -> list[Any] | None:
    """Return the cloud-resource providers this plugin offers (6.2.2b, 6.3.2e).

    A provider starts and recycles machine *instances* from executor or designer
    images, and reports the hosts it runs. It is an object with:

    * ``name`` (str): what an image's ``provider`` field names;
    * ``start(instance) -> dict``: start ``instance`` (it has ``id``, ``image`` with its
      ``kind``, ``spec`` dict and stored ``file``, and ``settings``) asynchronously and
      return what is known now (``{"state": "starting", "host": ..., ...}``);
    * ``stop(instance) -> None``: recycle it; never block long;
    * ``describe(instance) -> dict``: its current VM information (``state`` one of
      ``starting | running | stopped | failed``, ``host``, ``address``, ``cpu``,
      ``memoryMb``, ``pid``...); unknown instances answer ``{"state": "stopped"}``.
    """


# -- approvals ---------------------------------------------------------------


@hookspec
def rpahub_approval_kinds(kinds: Any) -> None:
    """Declare what needs a second person's approval (maker-checker, SEC-3).

    Call ``kinds.add(name, checker_permission, description, apply, on_reject=None)``: a
    request of kind ``name`` is decided only by a person holding ``checker_permission``
    who is not its maker; ``apply(request, hub)`` then runs in the approving transaction
    and carries out what was asked (its exception refuses the approval and rolls it
    back); ``on_reject(request, hub)`` runs when it is refused or withdrawn.
    Plugins file requests with ``rpahub_plugins.approvals.requests(hub).file(...)``.
    """


# -- notifications -----------------------------------------------------------


@hookspec
def rpahub_notifiers(hub: Hub) -> list[Any] | None:
    """Return the notification channels this plugin offers (alerts of 6.3.1b).

    A notifier is an object with ``name`` (what an alert rule's channel names) and
    ``send(notification: dict, target: str) -> None`` where ``notification`` has
    ``title``, ``text``, ``severity``, ``rule``, ``state`` (firing | resolved), ``at``
    and ``labels``, and ``target`` is the rule's address for this channel (a URL, an
    e-mail address...). Raise to report a failed delivery; the hub retries and records
    it. An optional ``check_target(target) -> None`` raises ``BadRequest`` for an address
    the channel can never reach, so a rule with a bad address is refused when it is
    written, not when it fires. Built-in: ``webhook`` and ``email`` (SMTP).
    """


# -- web console ---------------------------------------------------------------


@hookspec
def rpahub_console_pages(pages: Any, hub: Hub) -> None:
    """Add pages to the web console (the ``console`` plugin serves them under ``/console``).

    ``pages.view(path, handler, permission=..., nav=(section, label))`` adds a page
    answering GET; ``pages.action(path, handler, permission=...)`` a form POST (the
    console checks the signed-in person and the form's CSRF token before calling it).
    A handler receives a ``View``: ``view.api`` calls the public ``/api/v1`` with the
    person's own credential (so a page can never do more than its API allows),
    ``view.render(template, **context)`` renders a Jinja2 template found in a plugin's
    ``templates`` folder added with ``pages.templates(folder)``, and ``view.redirect``.
    Wrap labels in ``N_()`` and strings of templates in ``_()``; add translations with
    ``pages.catalogues(folder)`` (``<folder>/<locale>/LC_MESSAGES/*.po``).
    Built-in pages register through this hook exactly like a third party's.
    """


# -- video storage -----------------------------------------------------------


@hookspec(firstresult=True)
def rpahub_store_video(video_id: str, stream: Any, hub: Hub) -> dict[str, Any] | None:
    """Store a recording read from ``stream``; return ``{"size": ..., "sha256": ...}``."""


@hookspec(firstresult=True)
def rpahub_open_video(video_id: str, hub: Hub) -> Any | None:
    """Return a seekable binary file object for a stored recording, or ``None``."""


# -- tier sync ---------------------------------------------------------------


@hookspec
def rpahub_tier_outbox(hub: Hub) -> list[dict[str, Any]] | None:
    """Return records this (provincial) hub must report to headquarters."""


@hookspec
def rpahub_tier_receive(records: list[dict[str, Any]], origin: str, hub: Hub) -> None:
    """Accept records reported by a provincial hub named ``origin``."""
