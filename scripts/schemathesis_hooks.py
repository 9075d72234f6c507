"""Schemathesis hooks of scripts/schemathesis.sh.

docs/openapi.yaml states every rule JSON Schema can express. Four rules of the API relate
fields to each other or to the credential, which JSON Schema cannot say; the document states
them in prose and the server refuses a request that breaks them with 422 `invalid`:

- `POST /v1/reservations`: no SKU on two lines (`uniqueItems` only forbids identical lines),
  and `buyer` is required with a storefront or admin token (a buyer JWT may omit it);
- `PUT /v1/skus/{sku}`: `sale_ends_at` after `sale_starts_at`, and `max_hold_s` at least the
  SKU's `reservation_ttl_s` (600 when absent);
- `POST /v1/reservations`: a `ttl_s` at most every line's SKU `reservation_ttl_s`, which a case
  cannot know: positive cases leave `ttl_s` out (gateway/tests/holds.rs covers it);
- `POST /v1/reservations/{id}/extend`: at most 600 s, so that most extensions stay within the
  SKU's `max_hold_s` (how many extensions are left depends on the reservation's history, so
  scripts/schemathesis.toml also accepts 422 there);
- `GET /v1/reservations`, `GET /v1/orders`: `buyer` is required with a storefront or admin token,
  and a `cursor` is only valid for the list (endpoint, buyer, filters) that answered it: a
  positive case keeps only a cursor the server gave (with that list's parameters) and drops any
  other;
- `PUT /v1/queues/{queue}`: `prequeue_opens_at` not after `starts_at`, a SKU in one queue only,
  and after the start a queue keeps its SKUs, times and method (so a positive case is mapped to
  one of 64 queues whose SKUs, times and method follow from its name, and has started);
- `POST /v1/queues/{queue}/join`: `buyer` is required with a storefront or admin token.
- `POST /v1/webhooks`: the `url` must reach an http(s) receiver (a resolvable host; the
  server under test runs with `--webhook-allow-private`), which `format: uri` cannot say.

A *positive* case (schema-valid data, which the server must accept) is brought within these
rules here, by the smallest change that keeps it schema-valid. Negative cases are left alone,
and every other check stays as schemathesis ships it.
"""

import hashlib

import schemathesis
from schemathesis.generation.modes import GenerationMode

# The receiver of positive webhook registrations: a closed loopback port (deliveries fail
# fast and are retried, then dead-lettered; nothing leaves the machine).
WEBHOOK_URL = "http://127.0.0.1:9/schemathesis"

# The buyer of positive reservations that name none (printable ASCII, 1..128 bytes).
DEFAULT_BUYER = "schemathesis-buyer"


def _is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _reservation(body: dict) -> None:
    if "buyer" not in body:
        body["buyer"] = DEFAULT_BUYER
    lines = body.get("lines")
    if isinstance(lines, list):
        seen = set()
        kept = []
        for line in lines:
            sku = line.get("sku") if isinstance(line, dict) else None
            if sku in seen:
                continue
            seen.add(sku)
            kept.append(line)
        body["lines"] = kept


def _sku(body: dict) -> None:
    starts, ends = body.get("sale_starts_at"), body.get("sale_ends_at")
    if isinstance(starts, str) and isinstance(ends, str) and _ms(ends) <= _ms(starts):
        del body["sale_ends_at"]


def _queue_name(case) -> None:
    """Maps the case's queue onto one of 64 names (`st-q00`..`st-q63`)."""
    name = str(case.path_parameters.get("queue", "q"))
    digest = hashlib.sha256(name.encode()).hexdigest()
    case.path_parameters["queue"] = "st-q%02d" % (int(digest, 16) % 64)


def _queue(case) -> None:
    _queue_name(case)
    queue = case.path_parameters["queue"]
    # Everything that must stay after the start follows from the mapped name alone.
    digest = hashlib.sha256(queue.encode()).hexdigest()
    body = case.body
    body["skus"] = ["%s-sku%d" % (queue, i) for i in range(1 + int(digest, 16) % 3)]
    body.pop("prequeue_opens_at", None)
    body["starts_at"] = "2000-01-01T00:00:00Z"
    body["method"] = "fifo" if int(digest, 16) % 2 == 0 else "random"


# The SKU hold when a PUT names none (protocol::limits::DEFAULT_RESERVATION_TTL_S).
DEFAULT_RESERVATION_TTL_S = 600

# Cursors the server answered on the list routes, with the query of the list they belong to
# (bounded: the oldest are dropped).
_CURSORS: dict = {}
_CURSORS_MAX = 1000
_LIST_ROUTES = {("GET", "/v1/reservations"), ("GET", "/v1/orders")}


def _sku_hold(body: dict) -> None:
    ttl = body.get("reservation_ttl_s")
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool):
        ttl = DEFAULT_RESERVATION_TTL_S
    hold = body.get("max_hold_s")
    if isinstance(hold, (int, float)) and not isinstance(hold, bool) and hold < ttl:
        body["max_hold_s"] = ttl


def _list_query(case) -> None:
    query = case.query if isinstance(case.query, dict) else {}
    if "buyer" not in query:
        query["buyer"] = DEFAULT_BUYER
    cursor = query.get("cursor")
    if cursor is not None:
        origin = _CURSORS.get(str(cursor))
        if origin is None:
            del query["cursor"]
        else:
            for key in ("buyer", "status", "sku"):
                query.pop(key, None)
            query.update(origin)
    case.query = query


def _ms(t: str) -> str:
    """A sortable key of a `Time` (`YYYY-MM-DDTHH:MM:SS[.f]Z`) to the millisecond, as the server
    keeps times: the fixed-width head, then the fraction cut or padded to 3 digits."""
    head, _, frac = t.rstrip("Z").partition(".")
    return head + "." + frac[:3].ljust(3, "0")


@schemathesis.hook
def map_case(context, case):
    route = (case.operation.method.upper(), case.operation.path)
    if _is_positive(case) and route in _LIST_ROUTES:
        _list_query(case)
        return case
    if not _is_positive(case) or not isinstance(case.body, dict):
        return case
    if route == ("POST", "/v1/reservations"):
        _reservation(case.body)
        case.body.pop("ttl_s", None)
    elif route == ("POST", "/v1/reservations/{id}/extend"):
        ttl = case.body.get("ttl_s")
        if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 600:
            case.body["ttl_s"] = 600
    elif route == ("PUT", "/v1/skus/{sku}"):
        _sku(case.body)
        _sku_hold(case.body)
    elif route == ("PUT", "/v1/queues/{queue}"):
        _queue(case)
    elif route == ("POST", "/v1/queues/{queue}/join"):
        if "buyer" not in case.body:
            case.body["buyer"] = DEFAULT_BUYER
    elif route == ("POST", "/v1/webhooks"):
        case.body["url"] = WEBHOOK_URL
    return case


@schemathesis.hook
def after_call(context, case, response):
    """Remembers the `next_cursor` of list pages, with the query of the list it belongs to."""
    route = (case.operation.method.upper(), case.operation.path)
    if route not in _LIST_ROUTES or response.status_code != 200:
        return
    try:
        cursor = response.json().get("next_cursor")
    except Exception:  # not JSON: nothing to remember (the checks report it)
        return
    if not isinstance(cursor, str):
        return
    query = case.query if isinstance(case.query, dict) else {}
    origin = {k: query[k] for k in ("buyer", "status", "sku") if k in query}
    if len(_CURSORS) >= _CURSORS_MAX:
        _CURSORS.pop(next(iter(_CURSORS)))
    _CURSORS[cursor] = origin
