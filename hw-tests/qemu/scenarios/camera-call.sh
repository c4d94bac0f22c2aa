# scenario: the real visio-roomd joins visio-sim with the vivid camera and snd-aloop microphone; the official SDK peer decodes and hears them
# default: no (5–9 min under TCG on a loaded 2-core machine: the SDK peer takes 70–110 s to connect, its first frame came after 4 min)
# timeout: 900
# Issue 12 item 4, first bullet, the part that needs no physical control: the room's camera is
# vivid (/dev/video0, held by the daemon for the whole call), its microphone the capture side of
# snd-aloop while gst-launch plays a 440 Hz tone into the playback side; the official LiveKit
# Python SDK peer, in the same meeting, must decode the room's video and hear the tone.
set -uo pipefail
. "$REPO/hw-tests/qemu/lib/room.sh"
room_need

video=/dev/video0
[ "$(cat /sys/class/video4linux/video0/name 2>/dev/null)" = vivid-000-vid-cap ] \
  || { echo "/dev/video0 is not vivid's capture node"; exit 1; }

# The tone into the loopback's playback side (the device fixes the format for the capture side).
# Ticks (a 440 Hz burst every second), not a steady tone: the daemon's voice processing
# (webrtcdsp noise suppression) removes a stationary sine entirely.
gst-launch-1.0 -q audiotestsrc wave=ticks freq=440 volume=0.8 is-live=true \
  ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! alsasink device=hw:Loopback,0,0 \
  >"$ROOM_LOGS/tone.log" 2>&1 &
ROOM_PIDS+=($!)

room_start_bus
room_start_sim
room_start_daemon "[room]
name = \"QEMU room\"

[visio]
allowed_hosts = [\"$ROOM_SIM_HOST\"]

[media]
video_source = \"$video\"
audio_source = \"plughw:CARD=Loopback,DEV=1\"
video_sink = \"none\"
audio_sink = \"none\"
resolution = \"320x180\"
framerate = 15"

fail=0
room_ctl join "$ROOM_SIM/$ROOM_SLUG" || { echo "FAIL visio-roomctl join"; exit 1; }
room_wait 120 "the room is in the call" 's["state"] == "in-call"' || exit 1

# The daemon holds the camera and the microphone (not a fallback to test sources): its open
# files include /dev/video0 and the capture PCM of the loopback's second device.
card=$(basename "$(readlink -f /proc/asound/Loopback)")   # card0
pcm="/dev/snd/pcmC${card#card}D1c"
open_files=$(ls -l "/proc/$ROOM_DAEMON_PID/fd" 2>/dev/null)
for dev in "$video" "$pcm"; do
  if echo "$open_files" | grep -q -- "-> $dev\$"; then
    echo "ok   visio-roomd has $dev open during the call"
  else
    echo "FAIL visio-roomd does not have $dev open during the call"; fail=1
  fi
done

# The official SDK peer decodes the room's video and hears the tone.
room_start_peer Peer 420
deadline=$(( $(date +%s) + 400 ))
verdict="" heard=1
while [ "$(date +%s)" -lt "$deadline" ]; do
  verdict=$(grep '^{"t"' "$ROOM_LOGS/peer-Peer.log" 2>/dev/null | tail -1 | /usr/bin/python3 -c '
import json, sys
try:
    line = json.loads(sys.stdin.read())
except ValueError:
    sys.exit(2)
video = [v for v in line.get("remote", {}).values() if v["kind"] == "video"]
audio = [v for v in line.get("remote", {}).values() if v["kind"] == "audio"]
frames = max((v["frames"] for v in video), default=0)
size = next(("%dx%d" % (v["width"], v["height"]) for v in video if v["frames"]), "-")
peak = max((v.get("peak_rms", 0) for v in audio), default=0)
t = line.get("t")
print(f"t={t} s: video frames {frames} at {size}, audio peak rms {peak:.3f}")
sys.exit(0 if frames >= 5 and size == "320x180" and peak > 0.01 else 1)
')
  heard=$?
  [ $heard = 0 ] && break
  sleep 1
done
echo "peer: ${verdict:-no status line}"
if [ $heard = 0 ]; then
  echo "ok   the official SDK peer decoded the vivid camera (5+ frames at 320x180) and heard the snd-aloop ticks"
else
  echo "FAIL the official SDK peer did not decode 5 frames at 320x180 and hear the ticks within 400 s"; fail=1
fi

room_ctl leave >/dev/null || { echo "FAIL visio-roomctl leave"; fail=1; }
room_wait 30 "the room left" 's["state"] == "idle"' || fail=1
room_failed=$fail
exit $fail
