from pathlib import Path

from setuptools import find_packages, setup

BUILTIN_PLUGINS = [
    "storage_sqlite = rpahub_plugins.storage_sqlite",
    "storage_postgres = rpahub_plugins.storage_postgres",
    "auth_local = rpahub_plugins.auth_local",
    "audit_log = rpahub_plugins.audit_log",
    "system = rpahub_plugins.system",
    "demo = rpahub_plugins.demo",
    "executors = rpahub_plugins.executors",
    "protocol_ws = rpahub_plugins.protocol_ws",
    "protocol_http = rpahub_plugins.protocol_http",
    "dispatch = rpahub_plugins.dispatch",
    "sched_policies = rpahub_plugins.sched_policies",
    "schedules = rpahub_plugins.schedules",
    "flows = rpahub_plugins.flows",
    "autoscale = rpahub_plugins.autoscale",
    "approvals = rpahub_plugins.approvals",
    "share = rpahub_plugins.share",
    "design = rpahub_plugins.design",
    "designers = rpahub_plugins.designers",
    "images = rpahub_plugins.images",
    "auth_oidc = rpahub_plugins.auth_oidc",
    "ops = rpahub_plugins.ops",
    "operations = rpahub_plugins.operations",
    "console = rpahub_plugins.console",
]

packages = find_packages(include=["rpahub_core", "rpahub_core.*", "rpahub_plugins", "rpahub_plugins.*"])
packages += ["rpahub_adapters" + p[len("adapters"):] for p in find_packages(include=["adapters", "adapters.*"])]
packages += ["rpahub_contrib" + p[len("contrib"):] for p in find_packages(include=["contrib", "contrib.*"])]

setup(
    name="rpahub",
    version="0.1.0",
    description="Plugin-based RPA control plane implementing T/CES 130-2022",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages,
    package_dir={"rpahub_adapters": "adapters", "rpahub_contrib": "contrib"},
    include_package_data=True,
    package_data={"rpahub_contrib.demo": ["sample/*"],
                  "rpahub_plugins.console": ["templates/*.html", "templates/*/*.html", "static/*",
                                             "locale/*/LC_MESSAGES/*.po", "babel.cfg"]},
    install_requires=[
        "pluggy>=1.5,<2",
        "stevedore>=5.2,<6",
        "falcon>=4.0,<5",
        "gunicorn>=23,<28",
        "gevent>=24.2,<27",
        "gevent-websocket>=0.10.1,<0.11",
        "wsaccel>=0.6.6,<0.7",
        "peewee>=3.17,<5",
        "schedule>=1.2,<2",
        "cryptography>=43,<51",
        # gunicorn's gevent worker imports it without declaring it.
        "packaging>=23,<27",
        # One declaration validates input and renders the OpenAPI document.
        "pydantic>=2.7,<3",
        "prometheus_client>=0.20,<1",
        # IANA zones for zoneinfo where the system has none.
        "tzdata>=2023.3",
        # The reference executor and `rpahub demo` ship with the hub.
        "robotframework>=7,<8",
        "websocket-client>=1.7,<2",
        "requests>=2.31,<3",
        # Verifies the identity platform's bearer JWTs (RS/ES/EdDSA) against its JWKS.
        "PyJWT[crypto]>=2.8,<3",
        # The console: server-rendered pages, their message catalogues, charts drawn on the server.
        "Jinja2>=3.1,<4",
        "Babel>=2.14,<3",
        "pygal>=3.0,<4",
        # News, lessons and articles are written in Markdown: CommonMark, raw HTML off.
        "markdown-it-py>=3,<5",
    ],
    extras_require={
        # psycopg 3 yields to gevent once the worker patched the standard library.
        "postgres": ["psycopg[binary]>=3.1,<4"],
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            "requests>=2.31,<3",
            "websocket-client>=1.7,<2",
            "openapi-spec-validator>=0.7,<1",
            "hypothesis>=6.100,<7",
            # Fuzzes every operation of /api/openapi.json in the test run (tests/test_api_fuzz.py).
            "schemathesis>=4.32,<5",
            # Drives the machine's Chromium (/usr/bin/chromium) in the console's browser tests.
            "playwright>=1.45,<2",
            "ruff>=0.5,<1",
            "setuptools>=68",
            "wheel",
        ],
    },
    entry_points={
        "console_scripts": [
            "rpahub = rpahub_core.cli:main",
            "rpahub-executor = rpahub_contrib.executor.cli:main",
            "rpahub-fleet = rpahub_contrib.fleet.cli:main",
        ],
        "rpahub": BUILTIN_PLUGINS,
        "rpahub.adapters": [
            "tces130 = rpahub_adapters.tces130:Adapter",
            "robotframework = rpahub_adapters.robotframework:Adapter",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Falcon",
        "License :: OSI Approved :: Apache Software License",
    ],
)
