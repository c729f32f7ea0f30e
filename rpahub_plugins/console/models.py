"""What each person chose for the console: language and time zone."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, utcnow


class ConsolePreference(BaseModel):
    user_id = peewee.CharField(primary_key=True, max_length=32)
    language = peewee.CharField(max_length=16, default="")  # "": not chosen, the browser decides
    timezone = peewee.CharField(max_length=64, default="")
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "console_preference"


MODELS = [ConsolePreference]
