# Guest side of a scenario that runs a crate's real-device test binaries (listed by
# cargo-hw.host in $RESULTS/SCENARIO.bins) with VISIO_HW_TESTS=1, one test at a time (they
# share the devices). Source it with SCENARIO set; exits 0 (all passed), 77 (nothing to run:
# the reason is the last line) or 1. A binary that runs no test or ignores one is reported, not
# passed silently.
if [ -e "$RESULTS/$SCENARIO.none" ]; then
  echo "not run: $(cat "$RESULTS/$SCENARIO.none")"
  exit 77
fi
if [ ! -s "$RESULTS/$SCENARIO.bins" ]; then
  echo "no test binary was built for $SCENARIO (VISIO_QEMU_NO_BUILD=1, or the host preparation failed)"
  exit 77
fi
status=0
while read -r name bin; do
  echo "--- $name ($bin)"
  out=$(mktemp)
  VISIO_HW_TESTS=1 RUST_BACKTRACE=1 "$bin" --test-threads=1 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  summary=$(grep -E '^test result:' "$out" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name (exit status $rc)"; status=1
  elif echo "$summary" | grep -q ' 0 passed'; then
    echo "FAIL $name: no test ran ($summary)"; status=1
  elif ! echo "$summary" | grep -q ' 0 ignored'; then
    echo "FAIL $name: tests were ignored with VISIO_HW_TESTS=1 ($summary)"; status=1
  else
    echo "ok   $name: $summary"
  fi
  rm -f "$out"
done <"$RESULTS/$SCENARIO.bins"
exit $status
