"""Greetings: a route and a table of its own, added without touching the hub's core."""

import peewee

from rpahub_core import hookimpl
from rpahub_core.db import BaseModel
from rpahub_core.migrations import create_tables
from rpahub_core.web import ApiModel, ok, operation


class Greeting(BaseModel):
    text = peewee.CharField(max_length=200)


class GreetingIn(ApiModel):
    text: str


class Greetings:
    @operation(permission="hello.read", summary="All greetings")
    def on_get(self, req, resp):
        ok(resp, [g.text for g in Greeting.select().order_by(Greeting.id)])

    @operation(permission="hello.write", summary="Add a greeting", body=GreetingIn, audit="hello.greet", status=201)
    def on_post(self, req, resp):
        Greeting.create(text=req.context.body.text)
        ok(resp, None, status=201)


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("hello", 1, create_tables(Greeting), "greeting table")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("hello.read", "Read greetings")
    permissions.add("hello.write", "Write greetings")


@hookimpl
def rpahub_register_routes(routes, hub):
    routes.add("/api/v1/hello", Greetings())
