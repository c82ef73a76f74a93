"""peer_fastapi -- the FastAPI + uvicorn peer: the same hooks as hookd's
example plugins, written the way a FastAPI user would write them, so the
benchmark table shows the ratio to what users would otherwise pick.

Run (bench/run.sh does it, with Debian's python3-fastapi python3-uvicorn):
    python3 -m uvicorn --app-dir bench peer_fastapi:app \
        --host 127.0.0.1 --port PORT --no-access-log --log-level warning

    POST /hooks/echo        plain `def`: FastAPI runs it on its thread pool
    POST /hooks/echo_async  `async def`: on the event loop
    POST /hooks/mixed       tag (sync, pool) -> tag_async (loop) -> echo (sync,
                            pool), appending labels to "trace" like hookd's
                            `mixed` chain in etc/hookd.json
    POST /hooks/cpu         plain `def`: the same hash as plugins/cpu.c, in pure
                            Python (much slower per round: that is the point)
    POST /hooks/fanout      `async def`: {"url": U, "count": N} -> N GETs at
                            once with asyncio.gather, like plugins/fanout.c.
                            Debian 12 ships neither httpx nor aiohttp with
                            python3-fastapi, so this is raw HTTP/1.1 over
                            asyncio.open_connection with a keep-alive pool
                            per host (hookd's libcurl reuses connections too).

Bodies are taken as `Any` (parsed JSON, no model validation) and returned as
Python objects (FastAPI's jsonable_encoder + JSONResponse), the common idiom.
"""

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import Body, FastAPI
from fastapi.concurrency import run_in_threadpool

app = FastAPI()

CPU_DEFAULT_N = 700000  # same default as plugins/cpu.c
MASK64 = 0xFFFFFFFFFFFFFFFF


def _tag(body: Any, label: str) -> Any:
    if not isinstance(body, dict):
        raise ValueError("input must be a JSON object")
    trace = body.get("trace")
    if not isinstance(trace, list):
        trace = body["trace"] = []
    trace.append(label)
    return body


@app.post("/hooks/echo")
def echo(body: Any = Body(...)) -> Any:
    return body


@app.post("/hooks/echo_async")
async def echo_async(body: Any = Body(...)) -> Any:
    return body


@app.post("/hooks/mixed")
async def mixed(body: Any = Body(...)) -> Any:
    body = await run_in_threadpool(_tag, body, "sync step")
    body = _tag(body, "async step")
    return await run_in_threadpool(lambda b: b, body)


@app.post("/hooks/cpu")
def cpu(body: Any = Body(...)) -> Any:
    n = body.get("n", CPU_DEFAULT_N) if isinstance(body, dict) else CPU_DEFAULT_N
    n = int(n)
    h = 0xCBF29CE484222325
    for i in range(n):
        h = ((h ^ i) * 0x100000001B3) & MASK64
    return {"hash": "%016x" % h, "n": n}


# --- fan-out: a tiny keep-alive HTTP/1.1 client on asyncio streams ---------

_idle: dict = {}  # (host, port) -> [(reader, writer), ...]


async def _get(url: str, timeout: float) -> dict:
    started = time.monotonic()
    u = urlsplit(url)
    key = (u.hostname, u.port or 80)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    pool = _idle.setdefault(key, [])
    writer = None
    try:
        if pool:
            reader, writer = pool.pop()
        else:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*key), timeout)
        writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: peer\r\n\r\n"
                      % (path, key[0], key[1])).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        data = await asyncio.wait_for(reader.readexactly(length), timeout)
        if close:
            writer.close()
        else:
            pool.append((reader, writer))
        return {"status": status, "bytes": len(data),
                "ms": round((time.monotonic() - started) * 1000)}
    except Exception as e:  # a failed request is a result, like in fanout.c
        if writer is not None:
            writer.close()
        return {"error": "%s: %s" % (type(e).__name__, e),
                "ms": round((time.monotonic() - started) * 1000)}


@app.post("/hooks/fanout")
async def fanout(body: Any = Body(...)) -> Any:
    started = time.monotonic()
    urls = body.get("urls")
    if not isinstance(urls, list):
        urls = [body["url"]] * int(body.get("count", 1))
    timeout = float(body.get("timeout_ms", 10000)) / 1000
    results = await asyncio.gather(*(_get(u, timeout) for u in urls))
    return {"results": results, "ms": round((time.monotonic() - started) * 1000)}
