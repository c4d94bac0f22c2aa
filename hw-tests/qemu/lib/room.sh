# The real room in the guest, for the full-daemon scenarios (source this file; needs REPO and
# CARGO_TARGET_DIR, set by guest/run-scenarios). Like hw-tests/test-support, but in bash: a
# private dbus-daemon, visio-sim on loopback, visio-roomd with a configuration the scenario
# writes, the official LiveKit Python SDK peer. Everything is stopped by room_cleanup (an EXIT
# trap), and each process's log is printed when the scenario fails.
#   room_start_bus; room_start_sim; room_start_daemon CONFIG_TEXT
#   room_ctl ARGS…                  visio-roomctl --session-bus ARGS
#   room_status_field EXPR          a Python expression on the status JSON `s`, printed
#   room_wait SECS WHAT EXPR        waits until EXPR (on `s`) is true
#   room_start_peer NAME SECONDS    the Python SDK peer (no media) in the meeting; prints to $ROOM_LOGS/peer-NAME.log
#   room_sim_participants           the simulator's participants of $ROOM_SLUG (JSON)
ROOM_BIN="$CARGO_TARGET_DIR/debug"
ROOM_DIR=$(mktemp -d /tmp/room.XXXXXX)   # sockets, configuration, state (9p has no sockets)
# Logs in the shared results directory: readable from the host while the guest runs, and kept
# with VISIO_QEMU_KEEP=1.
ROOM_LOGS=$(mktemp -d "${RESULTS:-/tmp}/room-logs.XXXXXX")
ROOM_SLUG=abc-defg-hij
ROOM_ADMIN_TOKEN=qemu-admin-token
ROOM_PY="$REPO/hw-tests/.work/venv/bin/python"
ROOM_PIDS=()
room_failed=1

room_cleanup() {
  local pid
  for pid in "${ROOM_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${ROOM_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "$room_failed" != 0 ]; then
    for f in "$ROOM_LOGS"/*.log; do
      [ -s "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)"
      tail -60 "$f"
    done
  fi
  rm -rf "$ROOM_DIR"
}
trap room_cleanup EXIT

room_need() {
  local f
  for f in "$ROOM_BIN/visio-roomd" "$ROOM_BIN/visio-roomctl" "$ROOM_BIN/visio-sim"; do
    [ -x "$f" ] || { echo "$f is missing: cargo build --workspace --bins"; exit 1; }
  done
  [ -x "$ROOM_PY" ] || { echo "$ROOM_PY is missing: scripts/setup (scripts/deps.d/sim.sh)"; exit 1; }
}

# libwebrtc (the Python SDK peer) never gathers ICE candidates on the loopback interface: like
# hw-tests/test-support's enter_loopback_only_netns, a veth end carrying 127.0.0.2/32 gives it
# one, and all media stays on 127.0.0.0/8 (the guest has no other network anyway).
room_network() {
  ip link show lk0 >/dev/null 2>&1 && return 0
  ip link add lk0 type veth peer name lk1 && ip addr add 127.0.0.2/32 dev lk0 \
    && ip link set lk0 up && ip link set lk1 up || { echo "cannot add the veth pair for libwebrtc"; exit 1; }
}

room_start_bus() {
  room_network
  dbus-daemon --session --nofork --print-address=3 --address="unix:path=$ROOM_DIR/bus" \
    3>"$ROOM_DIR/bus.address" 2>"$ROOM_LOGS/dbus.log" &
  ROOM_PIDS+=($!)
  local i
  for i in $(seq 100); do [ -s "$ROOM_DIR/bus.address" ] && break; sleep 0.1; done
  DBUS_SESSION_BUS_ADDRESS=$(head -1 "$ROOM_DIR/bus.address")
  export DBUS_SESSION_BUS_ADDRESS
  [ -n "$DBUS_SESSION_BUS_ADDRESS" ] || { echo "dbus-daemon printed no address"; exit 1; }
}

room_start_sim() {
  mkfifo "$ROOM_DIR/sim.out"
  RUST_LOG=visio_sim=info "$ROOM_BIN/visio-sim" --listen 127.0.0.1:0 --admin-token "$ROOM_ADMIN_TOKEN" \
    >"$ROOM_DIR/sim.out" 2>"$ROOM_LOGS/visio-sim.log" &
  ROOM_PIDS+=($!)
  local line
  exec 4<"$ROOM_DIR/sim.out"
  read -r -t 60 line <&4 || { echo "visio-sim printed no address"; exit 1; }
  cat <&4 >/dev/null &   # keep draining its stdout
  ROOM_SIM="${line#visio-sim listening on }"
  ROOM_SIM_HOST="${ROOM_SIM#http://}"
  echo "visio-sim on $ROOM_SIM"
}

room_start_daemon() {
  printf '%s\n' "$1" >"$ROOM_DIR/config.toml"
  RUST_LOG=info "$ROOM_BIN/visio-roomd" --session-bus --config "$ROOM_DIR/config.toml" \
    --state-dir "$ROOM_DIR/state" >/dev/null 2>"$ROOM_LOGS/visio-roomd.log" &
  ROOM_DAEMON_PID=$!
  ROOM_PIDS+=($ROOM_DAEMON_PID)
  local i
  for i in $(seq 300); do
    room_ctl status --json >/dev/null 2>&1 && { echo "visio-roomd ready"; return 0; }
    kill -0 "$ROOM_DAEMON_PID" 2>/dev/null || { echo "visio-roomd exited at start"; exit 1; }
    sleep 0.1
  done
  echo "visio-roomd did not own its bus name within 30 s"; exit 1
}

room_ctl() { "$ROOM_BIN/visio-roomctl" --session-bus "$@"; }

room_status_field() {
  room_ctl status --json | /usr/bin/python3 -c "import json, sys; s = json.load(sys.stdin); print($1)"
}

room_wait() { # SECS WHAT EXPR
  local deadline=$(( $(date +%s) + $1 )) last
  while [ "$(date +%s)" -lt "$deadline" ]; do
    last=$(room_ctl status --json 2>&1) || true
    if echo "$last" | /usr/bin/python3 -c "import json, sys; s = json.load(sys.stdin); sys.exit(0 if ($3) else 1)" 2>/dev/null; then
      echo "ok   $2"; return 0
    fi
    sleep 0.3
  done
  echo "FAIL $2 (not within $1 s); last status: $last"
  return 1
}

room_start_peer() { # NAME SECONDS
  "$ROOM_PY" "$REPO/hw-tests/visio-sim/tests/peers/python_peer.py" --url "$ROOM_SIM" --room "$ROOM_SLUG" \
    --name "$1" --seconds "$2" --no-media >"$ROOM_LOGS/peer-$1.log" 2>&1 &
  ROOM_PIDS+=($!)
}

room_sim_participants() {
  /usr/bin/python3 - "$ROOM_SIM" "$ROOM_SLUG" "$ROOM_ADMIN_TOKEN" <<'EOF'
import json, sys, urllib.request
origin, slug, token = sys.argv[1:]
req = urllib.request.Request(f"{origin}/sim/v1/rooms/{slug}/participants",
                             headers={"Authorization": f"Bearer {token}"})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(json.dumps(json.load(r).get("participants", [])))
except urllib.error.HTTPError as e:
    print("[]" if e.code == 404 else sys.exit(f"admin API: {e}"))
EOF
}
