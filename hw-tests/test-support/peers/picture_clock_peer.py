"""Glass-to-glass latency at an official client: the PyPI `livekit` SDK (Google's libwebrtc)
joins a visio-sim room through the Meet REST API, publishes nothing, subscribes to the video
of the participant named --watch and reads the picture clock drawn into every decoded frame
(format: daemon/media/src/picture_clock.rs). Prints one JSON line per second:

  {"t": 3.0, "state": "connected", "connected_unix_ms": ..., "first_frame_unix_ms": ...,
   "frames": 87, "width": 1280, "height": 720, "latency_ms": [41, 38, ...], "unreadable": 0}

`latency_ms` holds the samples since the previous line (wall clock now minus the time drawn
into the picture by the sender; both ends on this machine's clock). `first_frame_unix_ms`
is when the first frame of that participant was decoded (null until then).

Usage: picture_clock_peer.py --url http://127.0.0.1:PORT --room SLUG --watch NAME
       [--name NAME] [--seconds N]
"""

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
from livekit import rtc

BLOCKS = 48
SYNC = 0b1011_0010


def now_ms() -> int:
    return int(time.time() * 1000)


def read_clock(luma: np.ndarray, stride: int, width: int, height: int):
    """The timestamp drawn into a luma plane, or None (same rules as picture_clock::read)."""
    size = width // BLOCKS
    if size < 2 or height < size:
        return None
    row = (size // 2) * stride
    xs = np.arange(BLOCKS) * size + size // 2
    bits = luma[row + xs] >= 128
    code = 0
    for b in bits:
        code = (code << 1) | int(b)
    ms = (code >> 8) & 0xFFFFFFFF
    b = ms.to_bytes(4, "big")
    checksum = b[0] ^ b[1] ^ b[2] ^ b[3]
    if (code >> 40) != SYNC or (code & 0xFF) != checksum:
        return None
    return ms


def meet_join(url: str, room: str, name: str) -> tuple[str, str]:
    q = urllib.parse.urlencode({"username": name})
    with urllib.request.urlopen(f"{url}/api/v1.0/rooms/{room}/?{q}", timeout=10) as r:
        body = json.load(r)
    lk = body.get("livekit")
    if not lk:
        raise SystemExit(f"room {room} gave no livekit token (access level {body.get('access_level')})")
    return lk["url"].replace("http", "ws", 1), lk["token"]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--watch", required=True, help="display name of the sender to measure")
    ap.add_argument("--name", default="Mesure")
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()

    ws_url, token = meet_join(args.url, args.room, args.name)
    room = rtc.Room()
    stats = {"frames": 0, "width": 0, "height": 0, "unreadable": 0,
             "first_frame_unix_ms": None, "latency_ms": []}
    tasks = []

    async def watch(track: rtc.RemoteVideoTrack) -> None:
        async for ev in rtc.VideoStream(track):
            frame = ev.frame
            if stats["first_frame_unix_ms"] is None:
                stats["first_frame_unix_ms"] = now_ms()
            stats["frames"] += 1
            stats["width"], stats["height"] = frame.width, frame.height
            if frame.type != rtc.VideoBufferType.I420:
                frame = frame.convert(rtc.VideoBufferType.I420)
            luma = np.frombuffer(frame.data, dtype=np.uint8, count=frame.width * frame.height)
            stamped = read_clock(luma, frame.width, frame.width, frame.height)
            if stamped is None:
                stats["unreadable"] += 1
                continue
            age = (now_ms() - stamped) & 0xFFFFFFFF
            if age < 60_000:
                stats["latency_ms"].append(age)

    @room.on("track_subscribed")
    def on_track(track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_VIDEO and participant.name == args.watch:
            tasks.append(asyncio.ensure_future(watch(track)))

    start = time.monotonic()
    await room.connect(ws_url, token, rtc.RoomOptions(auto_subscribe=True))
    connected = now_ms()
    while time.monotonic() - start < args.seconds:
        await asyncio.sleep(1)
        line = dict(stats)
        stats["latency_ms"] = []
        line.update({
            "t": round(time.monotonic() - start, 1),
            "state": "connected" if room.isconnected() else "disconnected",
            "connected_unix_ms": connected,
        })
        print(json.dumps(line), flush=True)
    for t in tasks:
        t.cancel()
    await room.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
    sys.stdout.flush()
    # The SDK's native runtime may abort while tearing down at interpreter exit; the
    # measurements are printed, so leave without running that teardown.
    os._exit(0)
