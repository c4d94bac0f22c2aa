# scenario: the controls crate's real-device tests (daemon/controls/tests/hw_*.rs, VISIO_HW_TESTS=1)
# Built on the host by controls.host; see daemon/controls/tests/HW.md.
SCENARIO=controls
. "$REPO/hw-tests/qemu/lib/cargo-hw.sh"
