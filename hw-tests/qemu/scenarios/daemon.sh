# scenario: the full daemon on real drivers (daemon/roomd/tests/hw_*.rs, VISIO_HW_TESTS=1): issue 12 item 4
# Real visio-roomd, visio-sim and the official SDK peer inside the guest, through the
# hw-tests/test-support harness: a GPIO Join press with bounce → exactly one join, the peer
# decodes the vivid camera and hears the snd-aloop tone, LEDs follow the state; uinput
# KEY_MICMUTE and volume keys; the uhid speakerphone; SetVolume ↔ the snd-dummy mixer; vivid
# unplugged and back mid-call. Built on the host by daemon.host.
SCENARIO=daemon
. "$REPO/hw-tests/qemu/lib/cargo-hw.sh"
