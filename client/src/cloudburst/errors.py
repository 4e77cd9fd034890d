"""Every exception CloudBurst raises, and the one place that turns service failures into them.

    CloudBurstError
    ├── InputError         bad input: a scenario, job, model file, argument or ensemble name (CLI exit 2);
    │                      ``problems`` holds one sentence per problem, each led by where it is
    ├── ServiceError       a service that does not answer or refuses the credentials (CLI exit 3)
    │   ├── ServiceAway    one that does not answer now (following an ensemble waits for it)
    │   ├── ConfigError    no usable client settings
    │   └── InfluxWriteError  InfluxDB refused a write, or stayed unreachable through every retry
    ├── MemberFailed       a member that could not run; the message is the reason in its status record
    │   ├── EpanetError    EPANET's toolkit refused a call or could not solve (``code``: EPANET's error code)
    │   └── MemberUnbalanced  the hydraulics stopped balancing and the model says UNBALANCED STOP: a result
    │                      of its own class (``at_s``: the time step), not a crash
    └── TaskTimeout        a task of a task set ran past its timeout (raised inside the task, recorded as its
                           failure)

A ``KeyError`` or ``LookupError`` raised by a bug is none of these: it stays a traceback, never "bad input".
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import requests


class CloudBurstError(Exception):
    """The root of CloudBurst's exceptions."""


class InputError(CloudBurstError, ValueError):
    """Input that cannot make a job run; ``problems`` holds one sentence per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class Refused(InputError):
    """An action the caller may not take: another person's work, or more than their quota."""


class ServiceError(CloudBurstError, RuntimeError):
    """A service that does not answer or refuses the credentials; the message is one sentence."""


class ServiceAway(ServiceError):
    """A service that does not answer now (not one that refuses): waiting may see it back."""


class ConfigError(ServiceError):
    """Client settings that are missing, unreadable, or name an unknown profile."""


class InfluxWriteError(ServiceError):
    """InfluxDB refused a write (bad credentials, bad data) or stayed unreachable through every retry."""


class MemberFailed(CloudBurstError, RuntimeError):
    """A member that could not run; the message is the reason recorded in its status."""


def _certificate_refused(error: BaseException) -> str | None:
    """The verification failure inside a connection error (a server whose certificate the CA did not sign, an
    expired one, a name it was not issued for), or None when the error is not that."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" not in text and "certificate verify failed" not in text:
        return None
    reason = text.split("certificate verify failed:", 1)[-1].split("(_ssl.c", 1)[0].strip(" .')\"")
    return reason or "certificate verify failed"


@contextlib.contextmanager
def service_errors(service: str, url: str, ca_file: str | None = None, user: str = "") -> Iterator[None]:
    """Turn Redis and HTTP client failures inside the block into a ServiceError naming the service and URL (and,
    for a certificate the client cannot verify, the CA it verified against; for refused credentials, the user)."""
    # Imported here: the CLI's first steps (--help, --version) raise and catch these errors without either client.
    import redis
    import requests
    try:
        try:
            yield
        except (redis.ConnectionError, requests.exceptions.SSLError) as error:
            reason = _certificate_refused(error)
            if reason is None:
                raise
            trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs (no ca_file set)"
            raise ServiceError(f"{service} at {url} presents a certificate that {trusted} does not vouch for "
                               f"({reason}): is ca_file this cluster's CA (site.yml writes it beside client.toml)?"
                               ) from None
    except redis.AuthenticationError:
        who = f" (user {user!r})" if user else ""
        raise ServiceError(f"{service} at {url} refused the user name or password{who}: a wrong password, or a user "
                           "the cluster no longer has (playbooks/remove-user.yml)") from None
    except redis.exceptions.NoPermissionError as error:
        raise ServiceError(f"{service} at {url} refused this user: {error}") from None
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as error:
        raise ServiceAway(f"{service} at {url} does not answer ({type(error).__name__})") from None
    except redis.RedisError as error:
        raise ServiceError(f"{service} at {url} does not answer ({type(error).__name__})") from None
    except (requests.ConnectionError, requests.Timeout) as error:
        raise ServiceAway(f"{service} at {url} does not answer ({type(error).__name__})") from None
    except requests.RequestException as error:
        raise ServiceError(f"{service} at {url} does not answer ({type(error).__name__})") from None


_Method = TypeVar("_Method", bound=Callable[..., Any])


def redis_errors(method: _Method) -> _Method:
    """Redis failures inside an API method become a ServiceError naming Redis and the client's URL (the object
    holds the ``services``, whose settings name it). HTTP services name themselves."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        settings = self.services.settings
        with service_errors("Redis", settings.redis_url, settings.ca_file or None, settings.redis_user):
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def refused(service: str, url: str, response: "requests.Response", what: str, user: str) -> ServiceError:
    """The error for an HTTP answer that is not the one expected: the user refused, or another status."""
    if response.status_code in (401, 403):
        return ServiceError(f"{service} at {url} refused user {user!r}")
    return ServiceError(f"{service} at {url} answered HTTP {response.status_code} to {what}")


class EpanetError(MemberFailed):
    """EPANET's toolkit answered an error code; the message is EPANET's own, with what was being done."""

    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(message)


class MemberUnbalanced(MemberFailed):
    """A member whose hydraulics stopped balancing, with the model's UNBALANCED option at STOP."""

    def __init__(self, at_s: int, message: str):
        self.at_s = at_s
        super().__init__(message)


class TaskTimeout(CloudBurstError):
    """Raised inside a task that ran past its task set's timeout; the task is recorded as failed with it."""
