"""A fast webhook receiver for the events benchmark (docs/benchmarks.md, "Events"): answers
204 to every POST over keep-alive and records, per event, the delivery lag = arrival time −
the event's `timestamp`. On SIGINT/SIGTERM it prints the count, distinct ids and lag
percentiles as JSON. Signatures are not checked here (the end-to-end tests do that).

Usage: python3 scripts/events_bench_receiver.py PORT
"""

import asyncio
import datetime
import json
import signal
import sys

lags_ms = []
ids = set()


def lag_ms(body: bytes) -> None:
    event = json.loads(body)
    ids.add(event["id"])
    ts = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    lags_ms.append((now - ts).total_seconds() * 1000.0)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            lag_ms(body)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def report() -> None:
    lags = sorted(lags_ms)
    pct = lambda p: round(lags[min(len(lags) - 1, int(len(lags) * p))], 1) if lags else None
    print(json.dumps({"deliveries": len(lags), "distinct": len(ids), "lag_ms_p50": pct(0.50),
                      "lag_ms_p99": pct(0.99), "lag_ms_max": pct(1.0)}), flush=True)


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    report()


asyncio.run(main())
