"""Which local user an identity platform's subject is.

People themselves live in auth_local's ``user`` table; this only links a platform's
stable subject (``iss`` + ``sub``) to one of them, so a renamed or reused user name
in the platform never lands on someone else's account.
"""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class OidcLink(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    issuer = peewee.CharField(max_length=255)
    subject = peewee.CharField(max_length=255)
    user_id = peewee.CharField(max_length=32, index=True)  # auth_local's user.id
    created_at = peewee.DateTimeField(default=utcnow)
    last_seen_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("issuer", "subject"), True),)


MODELS = (OidcLink,)
