"""One offline queue file, several kiosk processes (one per tablet under `waitroom kiosk --web`):
each request is sent once, in the order taken, whoever delivers it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from kiosk.offline import OfflineQueue
from tests.conftest import _free_port

ROOT = str(Path(__file__).resolve().parent.parent)

DELIVER = """
import asyncio, sys
from kiosk.api import HttpClinicClient
from kiosk.offline import OfflineQueue

async def main():
    api = HttpClinicClient(sys.argv[1], "token")
    queue = OfflineQueue(sys.argv[2])
    try:
        for _ in range(5):  # each process's retry loop, several rounds
            await queue.deliver(api)
    finally:
        await api.close()

asyncio.run(main())
"""


async def test_kiosk_processes_sharing_a_queue_send_each_request_once_in_order(tmp_path: Path) -> None:
    received: list[str] = []

    async def checkin(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body["idempotency_key"])
        await asyncio.sleep(0.02)  # long enough for the deliverers to overlap
        return web.json_response({"now": "2026-03-02T08:00:00-06:00", "visits": []})

    app = web.Application()
    app.router.add_post("/api/kiosk/checkin", checkin)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        path = tmp_path / "kiosk-queue.db"
        queue = OfflineQueue(path)
        keys = [await queue.enqueue("checkin", {"phone": "+13125550102", "appointments": []}) for _ in range(30)]
        procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", DELIVER, f"http://127.0.0.1:{port}",
                                                      str(path), cwd=ROOT)
                 for _ in range(4)]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 120)
        assert codes == [0, 0, 0, 0]
        assert received == keys  # every request once, in the order taken, across four processes
        assert [i.state for i in await queue.items()] == ["delivered"] * 30
    finally:
        await runner.cleanup()
