# scenario: a GPIO Join press with contact bounce makes the real visio-roomd join exactly once; the in_call LED follows
# Issue 12 item 4, first bullet: gpio-sim lines as the room's button and LED, configured as in
# the issue ([[controls.buttons]] join_leave on a gpio line, active low, 20 ms debounce by
# default; [[controls.leds]] in_call), visio.default_meeting on visio-sim in the guest. Skips,
# saying why, while visio-roomd does not read [controls] (until the controls are wired in).
set -uo pipefail
. "$REPO/hw-tests/qemu/lib/room.sh"
. "$REPO/hw-tests/qemu/lib/gpiosim.sh"
room_need

chip=$(gpiosim_create room 4 join led-in-call) || { echo "cannot create a gpio-sim chip"; exit 1; }
cleanup_chip() { gpiosim_remove room; room_cleanup; }
trap cleanup_chip EXIT
gpiosim_pull "$chip" 0 up   # active low: released = high

config() { # the meeting host
  cat <<EOF
[room]
name = "QEMU room"

[visio]
allowed_hosts = ["$1"]
default_meeting = "http://$1/$ROOM_SLUG"

[media]
video_source = "test"
audio_source = "test"
video_sink = "none"
audio_sink = "none"
resolution = "320x180"
framerate = 10

[[controls.buttons]]
action = "join_leave"
gpio = "$chip:0"

[[controls.leds]]
shows = "in_call"
gpio = "$chip:1"
EOF
}

# Does this visio-roomd read the controls at all? (--check-config names the unknown key.)
config 127.0.0.1:1 >"$ROOM_DIR/check.toml"
if ! why=$("$ROOM_BIN/visio-roomd" --check-config --config "$ROOM_DIR/check.toml" 2>&1); then
  room_failed=0
  echo "visio-roomd does not accept the controls configuration yet: $(echo "$why" | tail -1)"
  exit 77
fi

room_start_bus
room_start_sim
room_start_daemon "$(config "$ROOM_SIM_HOST")"
room_wait 30 "the room is idle" 's["state"] == "idle"' || exit 1
fail=0
[ "$(gpiosim_value "$chip" 1)" = 0 ] && echo "ok   the in_call LED is off while idle" \
  || { echo "FAIL the in_call LED is on while idle"; fail=1; }

press() { # a press with contact bounce: five changes within a few ms, held 300 ms, released
  local how
  for how in down up down up down; do gpiosim_pull "$chip" 0 "$how"; done
  sleep 0.3
  gpiosim_pull "$chip" 0 up
}

press
room_wait 120 "a bouncy Join press: the room is in the call" 's["state"] == "in-call"' || exit 1
sleep 3   # time for any extra (bounced) press to show as a leave or a second join
joins=$(grep -c 'participant joined' "$ROOM_LOGS/visio-sim.log")
state=$(room_status_field 's["state"]')
if [ "$joins" = 1 ] && [ "$state" = in-call ]; then
  echo "ok   exactly one join in visio-sim, still in the call"
else
  echo "FAIL $joins joins in visio-sim, state $state (the bounce made more than one press?)"; fail=1
fi
[ "$(gpiosim_value "$chip" 1)" = 1 ] && echo "ok   the in_call LED is on in the call" \
  || { echo "FAIL the in_call LED is off in the call"; fail=1; }

press
room_wait 60 "a second press: the room left" 's["state"] == "idle"' || fail=1
sleep 1
[ "$(gpiosim_value "$chip" 1)" = 0 ] && echo "ok   the in_call LED is off after leaving" \
  || { echo "FAIL the in_call LED is still on after leaving"; fail=1; }
room_failed=$fail
exit $fail
