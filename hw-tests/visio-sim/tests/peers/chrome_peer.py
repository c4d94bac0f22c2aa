"""Headless Debian Chromium joining a visio-sim room through the meeting page (the official
npm `livekit-client`, fake camera and microphone), driven over the DevTools protocol. Prints
one JSON line per second with what the page decoded (`window.visioSim.stats()`):

  {"t": 3.0, "phase": "connected", "identity": ..., "remote": [{"participant", "kind",
   "framesDecoded", "frameWidth", "frameHeight", "audioLevel", "totalAudioEnergy", ...}]}

Usage: chrome_peer.py --url http://127.0.0.1:PORT --room SLUG [--name NAME] [--seconds N]
       [--screenshot FILE] [--resolution h360] [--publish meet|none] [--no-red] [--click-camera-when FILE]
       [--control FILE]

--publish meet: publish as Meet's web app does (VP9 SVC L3T3_KEY with a VP8 backup codec,
Opus with DTX and RED); each line's `local` then says what each RTP stream really sends.
--publish none: publish nothing (a viewer). --no-red: answer the SFU's offers without
audio/red, as a client without RED would.

--control FILE: each second, new lines of FILE are commands: "camera" (press the camera
button), "hide-video" / "show-video" (hide or show the remote video tiles, as a person
scrolling them away would: livekit-client's adaptiveStream then disables those tracks).
"""

import argparse
import asyncio
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
]


def die_with_parent() -> None:
    """In the child before exec: Chromium is killed when this script dies, even by SIGKILL
    (tests kill their peers that way), instead of living on as an orphan."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Cdp:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
                p = reply["params"]
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])) \
                    or json.dumps(p.get("exceptionDetails", {}))[:2000]
                print(f"console {p.get('type', 'exception')}: {text}", file=sys.stderr, flush=True)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--name", default="Chromium")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--screenshot")
    ap.add_argument("--resolution", help="livekit-client preset for the camera, e.g. h360")
    ap.add_argument("--publish", choices=["meet", "none"],
                    help="publish with Meet's web app options (see above), or nothing")
    ap.add_argument("--no-red", action="store_true",
                    help="leave audio/red out of the answers: receive Opus without RED")
    ap.add_argument("--click-camera-when", metavar="FILE",
                    help="press the page's camera button (as a person would) once FILE exists")
    ap.add_argument("--control", metavar="FILE", help="commands, one a line (see above)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()

    profile = tempfile.mkdtemp(prefix="visio-sim-chromium-")
    log = open(os.path.join(profile, "chromium.log"), "wb")
    proc = subprocess.Popen([args.chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                print(json.dumps({"error": "chromium did not start"}), flush=True)
                return 2
            await asyncio.sleep(0.1)
        port, path = open(port_file).read().split("\n")[:2]
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=64 << 20) as ws:
            cdp = Cdp(ws)
            page = f"{args.url}/{args.room}?name={urllib.request.quote(args.name)}"
            if args.resolution:
                page += f"&resolution={args.resolution}"
            if args.publish:
                page += f"&publish={args.publish}"
            if args.no_red:
                page += "&red=off"
            target = await cdp.call("Target.createTarget", {"url": page})
            session = (await cdp.call("Target.attachToTarget",
                                      {"targetId": target["targetId"], "flatten": True}))["sessionId"]
            await cdp.call("Runtime.enable", {}, session)
            start = time.monotonic()
            clicked = False
            done = 0
            scripts = {
                "camera": "document.getElementById('camera').click()",
                "hide-video": "document.getElementById('grid').style.display = 'none'",
                "show-video": "document.getElementById('grid').style.display = ''",
            }
            while time.monotonic() - start < args.seconds:
                await asyncio.sleep(1)
                if args.click_camera_when and not clicked and os.path.exists(args.click_camera_when):
                    await cdp.call("Runtime.evaluate", {
                        "expression": "document.getElementById('camera').click()"}, session)
                    clicked = True
                if args.control and os.path.exists(args.control):
                    commands = open(args.control).read().split()
                    for command in commands[done:]:
                        await cdp.call("Runtime.evaluate", {"expression": scripts[command]}, session)
                    done = len(commands)
                res = await cdp.call("Runtime.evaluate", {
                    "expression": "window.visioSim ? window.visioSim.stats() : {phase: 'loading'}",
                    "awaitPromise": True, "returnByValue": True}, session)
                value = res.get("result", {}).get("value") or {}
                value["t"] = round(time.monotonic() - start, 1)
                print(json.dumps(value), flush=True)
            if args.screenshot:
                shot = await cdp.call("Page.captureScreenshot", {"format": "png"}, session)
                with open(args.screenshot, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
            await cdp.call("Runtime.evaluate", {
                "expression": "window.visioSim && window.visioSim.room && window.visioSim.room.disconnect()",
                "awaitPromise": True}, session)
            await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
