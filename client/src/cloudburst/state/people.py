"""The cluster's people: who may change others' work and how much each may have waiting. Each person is a Redis user
of their own (``playbooks/add-user.yml``); what they submit records them as its owner (``records``).

The keys are owned here, apart from ``cloudburst:*`` on purpose: a submitter may write every ``cloudburst:*`` key
(records, ledgers), and may only read these (``roles/stack/files/redis-users.conf``: ``%R~cloudburst-admin:*``), so no
submitter can make themselves an admin or lift their own quota. Only Redis's admin user (the playbooks) writes them.

- ``cloudburst-admin:admins``: a set of user names who may cancel, retry and delete anyone's work (besides Redis's
  ``admin`` and the cluster's own ``submitter``, whose client.toml site.yml writes for the operator, who holds every
  password of the cluster anyway).
- ``cloudburst-admin:quotas``: a hash, user name -> the most members (or tasks) they may have queued or running at
  once; a user without one has no limit.

Redis's ACLs cannot tell one submitter's RQ keys from another's (RQ's queue and registries are shared), so these
refusals are the client's: they keep honest people from each other's work, not a hostile holder of a submitter's
password, who can already run the env's code on the workers (README, "What a submitter can do").
"""
from __future__ import annotations

from redis import Redis

from cloudburst.errors import Refused
from cloudburst.state import redis_values

ADMINS_KEY = "cloudburst-admin:admins"
QUOTAS_KEY = "cloudburst-admin:quotas"
ADMIN_USERS = frozenset({"admin", "submitter"})  # admins whatever the set says (Redis's admin, the operator's client)
DEFAULT_USER = "default"    # who a client without ``redis_user`` is to Redis


class People:
    """The caller and what the cluster says of them."""

    def __init__(self, redis: Redis, user: str):
        self.redis = redis
        self.user = user or DEFAULT_USER

    def is_admin(self) -> bool:
        return self.user in ADMIN_USERS or bool(self.redis.sismember(ADMINS_KEY, self.user))

    def quota(self) -> int | None:
        """The most members (or tasks) the caller may have queued or running at once; None: no limit."""
        stored = self.redis.hget(QUOTAS_KEY, self.user)
        return None if stored is None else int(redis_values.text(stored))

    def refuse_change(self, name: str, owner: str, action: str) -> None:
        """Raise Refused unless the caller owns ``name`` or is an admin. Work recorded before owners were (no owner)
        is anyone's, as it was."""
        if not owner or owner == self.user or self.is_admin():
            return
        raise Refused(f"{name} belongs to {owner}: {self.user} may not {action} it (only its owner or an admin may; "
                      "`cloudburst list` shows each one's owner)")

    def refuse_over_quota(self, adding: int, waiting: int, quota: int) -> None:
        """Raise Refused when ``adding`` more members (or tasks) on top of the ``waiting`` ones the caller has queued
        or running would pass their ``quota``."""
        if waiting + adding > quota:
            raise Refused(f"{self.user}'s quota is {quota:,} members (or tasks) queued or running at once: "
                          f"{waiting:,} are now and this submission adds {adding:,}; wait for some to finish, cancel "
                          "some, or submit fewer (an admin sets quotas: playbooks/add-user.yml -e quota=N)")
