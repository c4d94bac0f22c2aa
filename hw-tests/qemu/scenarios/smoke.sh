# scenario: the virtual devices exist; GStreamer captures vivid and snd-aloop; gpio-sim over uAPI v2
# Runs in the guest (see guest/run-scenarios). Exit 0 = pass, anything else = fail.
set -euo pipefail
lib="$REPO/hw-tests/qemu/lib"
. "$lib/gpiosim.sh"
work=$(mktemp -d)
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# --- devices ---------------------------------------------------------------------------------
video=""
for dev in /sys/class/video4linux/video*; do
  [ -e "$dev" ] || continue
  if grep -q vivid "$dev/name" 2>/dev/null || grep -q vivid "$dev/device/driver/module/drivers" 2>/dev/null \
     || [ "$(basename "$(readlink -f "$dev/device/driver")")" = vivid ]; then
    video="/dev/$(basename "$dev")"; break
  fi
done
[ -n "$video" ] && [ -c "$video" ] && ok "vivid camera $video ($(cat "/sys/class/video4linux/$(basename "$video")/name"))" \
  || bad "no vivid /dev/video* (modprobe vivid: $(cat "$RESULTS/modprobe-failures" 2>/dev/null || echo 'loaded'))"
grep -q '\[Loopback *\]' /proc/asound/cards && ok "ALSA card Loopback (snd-aloop)" || bad "no ALSA card Loopback"
grep -q '\[Dummy *\]' /proc/asound/cards && ok "ALSA card Dummy (snd-dummy)" || bad "no ALSA card Dummy"
[ -c /dev/uinput ] && ok "/dev/uinput" || bad "no /dev/uinput"
[ -c /dev/uhid ] && ok "/dev/uhid" || bad "no /dev/uhid"

# Modules the kernel loads on demand (request_module → the host's /sbin/modprobe), as network
# namespaces and virtual links in the daemon scenarios need: a dummy link loads `dummy`.
if ip link add hwsmoke0 type dummy 2>/dev/null; then
  ip link del hwsmoke0; ok "the kernel loads modules on demand (ip link add … type dummy)"
else
  bad "ip link add hwsmoke0 type dummy failed: no module autoloading in the guest"
fi

# --- gpio-sim through configfs, then the GPIO character device (uAPI v2) ------------------------
if chip=$(gpiosim_create smoke 8 join mute led-in-call); then
  ok "gpio-sim chip $chip created through configfs (lines: join mute led-in-call …)"
  sim_dir=$(dirname "$(gpiosim_sysfs "$chip" 0)")
  /usr/bin/python3 "$lib/gpio_check.py" "/dev/$chip" "$sim_dir" || bad "gpio-sim over uAPI v2"
  gpiosim_remove smoke
else
  bad "cannot create a gpio-sim chip (modprobe: $(cat "$RESULTS/modprobe-failures" 2>/dev/null || echo 'loaded'))"
fi

# --- GStreamer capture from vivid --------------------------------------------------------------
# 10 frames of 320x180 YUY2 (a size of vivid's webcam input) to a file; a real capture has every byte and the frames differ
# (vivid draws a running frame counter and clock on its test pattern).
if [ -n "$video" ]; then
  frame=$((320 * 180 * 2))
  if timeout 120 gst-launch-1.0 -q v4l2src device="$video" num-buffers=10 \
       ! video/x-raw,format=YUY2,width=320,height=180 ! filesink location="$work/video.yuv"; then
    size=$(stat -c %s "$work/video.yuv")
    if [ "$size" -eq $((frame * 10)) ]; then
      first=$(head -c $frame "$work/video.yuv" | md5sum)
      last=$(tail -c $frame "$work/video.yuv" | md5sum)
      [ "$first" != "$last" ] && ok "v4l2src captured 10 frames from $video, first and last differ" \
        || bad "v4l2src: the 10 frames are identical (a frozen picture)"
    else
      bad "v4l2src: $size bytes captured, expected $((frame * 10))"
    fi
  else
    bad "gst-launch-1.0 v4l2src device=$video failed"
  fi
fi

# --- GStreamer through snd-aloop: a 440 Hz tone played into one side, captured on the other -----
caps="audio/x-raw,format=S16LE,rate=48000,channels=2"
timeout 60 gst-launch-1.0 -q audiotestsrc wave=sine freq=440 volume=0.5 num-buffers=150 \
  ! "$caps" ! alsasink device=hw:Loopback,0,0 &
player=$!
sleep 0.5
if timeout 60 gst-launch-1.0 -q alsasrc device=hw:Loopback,1,0 num-buffers=50 \
     ! "$caps" ! filesink location="$work/audio.raw"; then
  if /usr/bin/python3 "$lib/audio_check.py" "$work/audio.raw" 48000 2 440; then
    ok "alsasrc captured the 440 Hz tone played into hw:Loopback,0,0 from hw:Loopback,1,0"
  else
    bad "alsasrc on hw:Loopback,1,0: no 440 Hz tone"
  fi
else
  bad "gst-launch-1.0 alsasrc device=hw:Loopback,1,0 failed"
fi
wait $player || true
rm -rf "$work"
exit $fail
