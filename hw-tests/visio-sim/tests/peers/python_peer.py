"""A participant built on the official LiveKit Python SDK (PyPI `livekit`, Google's libwebrtc
inside). It joins a visio-sim room through the Meet REST API like a device, publishes a moving
test pattern (camera) and a 440 Hz tone (microphone), subscribes to everyone else, and prints
one JSON line per second with what it really decoded (times in seconds since it started
connecting: "connected_s" when `connect()` returned, a video's "first_frame_s"; "events"
counts the SDK's "reconnecting"/"reconnected" room events, "sid" is its participant sid):

  {"t": 3.0, "state": "connected", "identity": ..., "remote": {"<identity>/<track sid>":
   {"kind": "video", "frames": 87, "width": 640, "height": 480, "first_frame_s": 1.2} | {"kind": "audio",
   "frames": 150, "rms": 0.21, "peak_rms": 0.3}}}  (rms decays; peak_rms is the loudest 10 ms)

Usage: python_peer.py --url http://127.0.0.1:PORT --room SLUG [--name NAME] [--seconds N]
       [--width W --height H] [--no-media] [--lobby]
       [--send-data TEXT [--send-to-name NAME]] [--codec vp8|h264|vp9|av1] [--fps N]
       [--unpublish-camera-after SECONDS] [--dynacast] [--control FILE]

--lobby waits in the Meet lobby (request-entry every second, cookie sent back by hand) and
prints {"state": "waiting", "lobby_id": ...} until admitted. --send-data sends TEXT every
second as a reliable data packet (topic "visio-sim-test"), to everyone or to the participant
named NAME; received packets are listed under "data". --dynacast lets the SDK pause the
simulcast layers nobody subscribes to (SubscribedQualityUpdate). --control FILE: each second,
new lines of FILE are commands: "unsubscribe-video" / "subscribe-video" (every remote video
publication, `set_subscribed`), "quality-low" / "quality-medium" / "quality-high" (every
remote video publication, `set_video_quality`: UpdateTrackSettings with that quality).
"""

import argparse
import asyncio
import json
import math
import os
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
from livekit import rtc

QUALITIES = {
    "quality-low": rtc.VideoQuality.VIDEO_QUALITY_LOW,
    "quality-medium": rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    "quality-high": rtc.VideoQuality.VIDEO_QUALITY_HIGH,
}


def meet_lobby(url: str, room: str, name: str) -> tuple[str, str]:
    """POST request-entry every second until accepted; returns (ws url, token)."""
    cookie = None
    while True:
        req = urllib.request.Request(
            f"{url}/api/v1.0/rooms/{room}/request-entry/",
            data=json.dumps({"username": name}).encode(), method="POST",
            headers={"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})})
        with urllib.request.urlopen(req, timeout=5) as r:
            set_cookie = r.headers.get("Set-Cookie")
            if set_cookie:
                cookie = set_cookie.split(";")[0]
            entry = json.load(r)
        if entry["status"] == "accepted":
            lk = entry["livekit"]
            return lk["url"].replace("http", "ws", 1), lk["token"]
        print(json.dumps({"state": entry["status"], "lobby_id": entry["id"]}), flush=True)
        if entry["status"] == "denied":
            raise SystemExit(0)
        time.sleep(1)


def meet_join(url: str, room: str, name: str) -> tuple[str, str]:
    """GET rooms/<slug>/?username= → (LiveKit ws url, token)."""
    q = urllib.parse.urlencode({"username": name})
    with urllib.request.urlopen(f"{url}/api/v1.0/rooms/{room}/?{q}", timeout=5) as r:
        body = json.load(r)
    lk = body.get("livekit")
    if not lk:
        raise SystemExit(f"room {room} gave no livekit token (access level {body.get('access_level')})")
    return lk["url"].replace("http", "ws", 1), lk["token"]


async def publish_video(source: rtc.VideoSource, w: int, h: int, fps: int, stop: asyncio.Event) -> None:
    n = 0
    xs = np.arange(w, dtype=np.int32)
    ys = np.arange(h, dtype=np.int32)[:, None]
    while not stop.is_set():
        frame = np.empty((h, w, 4), dtype=np.uint8)
        frame[:, :, 0] = ((xs + n * 4) % 256).astype(np.uint8)
        frame[:, :, 1] = ((ys + n * 2) % 256).astype(np.uint8)
        frame[:, :, 2] = 128
        frame[:, :, 3] = 255
        source.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, frame.tobytes()))
        n += 1
        await asyncio.sleep(1 / fps)


async def publish_audio(source: rtc.AudioSource, stop: asyncio.Event) -> None:
    rate, per = 48000, 480
    t = 0
    while not stop.is_set():
        samples = (np.sin(2 * math.pi * 440 * (np.arange(per) + t) / rate) * 12000).astype(np.int16)
        t += per
        await source.capture_frame(rtc.AudioFrame(samples.tobytes(), rate, 1, per))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--name", default="Python")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--codec", default="vp8", choices=["vp8", "h264", "vp9", "av1"])
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--lobby", action="store_true")
    ap.add_argument("--unpublish-camera-after", type=float)
    ap.add_argument("--send-data")
    ap.add_argument("--send-to-name")
    ap.add_argument("--dynacast", action="store_true")
    ap.add_argument("--control")
    args = ap.parse_args()

    if args.lobby:
        ws_url, token = meet_lobby(args.url, args.room, args.name)
    else:
        ws_url, token = meet_join(args.url, args.room, args.name)
    room = rtc.Room()
    remote: dict[str, dict] = {}
    tasks: list[asyncio.Task] = []

    async def watch_video(key: str, track: rtc.RemoteVideoTrack) -> None:
        async for ev in rtc.VideoStream(track):
            s = remote[key]
            if s["frames"] == 0:
                s["first_frame_s"] = round(time.monotonic() - start, 3)
            s["frames"] += 1
            s["width"], s["height"] = ev.frame.width, ev.frame.height

    async def watch_audio(key: str, track: rtc.RemoteAudioTrack) -> None:
        async for ev in rtc.AudioStream(track):
            s = remote[key]
            s["frames"] += 1
            data = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float64) / 32768.0
            if data.size:
                rms = float(np.sqrt(np.mean(data * data)))
                s["rms"] = max(s.get("rms", 0.0) * 0.95, rms)
                s["peak_rms"] = max(s.get("peak_rms", 0.0), rms)

    @room.on("track_subscribed")
    def on_track(track, publication, participant):
        key = f"{participant.identity}/{publication.sid}"
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            remote[key] = {"kind": "video", "frames": 0, "width": 0, "height": 0}
            tasks.append(asyncio.ensure_future(watch_video(key, track)))
        else:
            remote[key] = {"kind": "audio", "frames": 0, "rms": 0.0, "peak_rms": 0.0}
            tasks.append(asyncio.ensure_future(watch_audio(key, track)))

    data: list[dict] = []
    events = {"reconnecting": 0, "reconnected": 0}

    @room.on("reconnecting")
    def on_reconnecting():
        events["reconnecting"] += 1

    @room.on("reconnected")
    def on_reconnected():
        events["reconnected"] += 1

    @room.on("data_received")
    def on_data(packet):
        data.append({
            "from": packet.participant.name if packet.participant else None,
            "topic": packet.topic,
            "payload": bytes(packet.data).decode(errors="replace"),
        })

    # Times in the report ("connected_s", a video's "first_frame_s") count from here.
    start = time.monotonic()
    await room.connect(ws_url, token, rtc.RoomOptions(auto_subscribe=True, dynacast=args.dynacast))
    connected_s = round(time.monotonic() - start, 3)
    stop = asyncio.Event()
    if args.no_media:
        await run(args, room, remote, data, start, connected_s, events)
        return
    vsrc = rtc.VideoSource(args.width, args.height)
    vtrack = rtc.LocalVideoTrack.create_video_track("camera", vsrc)
    vpub = await room.local_participant.publish_track(
        vtrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA,
                                        video_codec=rtc.VideoCodec.Value(args.codec.upper())))
    asrc = rtc.AudioSource(48000, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("microphone", asrc)
    await room.local_participant.publish_track(
        atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    tasks.append(asyncio.ensure_future(publish_video(vsrc, args.width, args.height, args.fps, stop)))
    tasks.append(asyncio.ensure_future(publish_audio(asrc, stop)))
    if args.unpublish_camera_after is not None:
        async def unpublish_later():
            await asyncio.sleep(args.unpublish_camera_after)
            await room.local_participant.unpublish_track(vpub.sid)
        tasks.append(asyncio.ensure_future(unpublish_later()))
    await run(args, room, remote, data, start, connected_s, events)
    stop.set()
    for t in tasks:
        t.cancel()


async def run(args, room: rtc.Room, remote: dict, data: list, start: float, connected_s: float, events: dict) -> None:
    """Reports once a second (and sends data if asked) until --seconds have passed."""
    done = 0
    while time.monotonic() - start < args.seconds:
        await asyncio.sleep(1)
        if args.control and os.path.exists(args.control):
            commands = open(args.control).read().split()
            for command in commands[done:]:
                for p in room.remote_participants.values():
                    for pub in p.track_publications.values():
                        if pub.kind != rtc.TrackKind.KIND_VIDEO:
                            continue
                        if command.startswith("quality-"):
                            pub.set_video_quality(QUALITIES[command])
                        else:
                            pub.set_subscribed(command == "subscribe-video")
            done = len(commands)
        if args.send_data and room.isconnected():
            dest = [p.identity for p in room.remote_participants.values() if p.name == args.send_to_name]
            if not args.send_to_name or dest:
                await room.local_participant.publish_data(
                    args.send_data.encode(), reliable=True, topic="visio-sim-test",
                    destination_identities=dest)
        for p in room.remote_participants.values():
            for pub in p.track_publications.values():
                key = f"{p.identity}/{pub.sid}"
                if key in remote:
                    remote[key]["muted"] = pub.muted
        print(json.dumps({
            "t": round(time.monotonic() - start, 1),
            "state": "connected" if room.isconnected() else "disconnected",
            "identity": room.local_participant.identity,
            "connected_s": connected_s,
            "sid": room.local_participant.sid,
            "events": events,
            "remote": remote,
            "data": data[-20:],
            "data_count": len(data),
        }), flush=True)
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
