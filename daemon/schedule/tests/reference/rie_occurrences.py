"""Occurrences of .ics files according to the Python reference `recurring-ical-events`.

Usage: rie_occurrences.py FROM TO FILE...   (FROM/TO as YYYY-MM-DD)
Prints one JSON object per file and line:
  {"file": ..., "error": null | "...", "seconds": float (wall), "cpu_seconds": float,
   "occurrences": [{"uid", "start", "end"}]}
Times: aware date-times in UTC ("2024-03-01T09:00:00Z"), floating ones prefixed with
"floating:", dates as "2024-03-01". Used by the differential test and the benchmark of
visio-room-schedule; needs the venv made by scripts/deps.d/schedule.sh.
"""

import datetime
import json
import os
import signal
import sys
import time

import icalendar
import recurring_ical_events

# A file the reference cannot expand within this time counts as a reference failure.
PER_FILE_TIMEOUT_S = int(os.environ.get("RIE_TIMEOUT_S", "20"))


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout()


def fmt(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return "floating:" + value.strftime("%Y-%m-%dT%H:%M:%S")
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def occurrences(path, start, end):
    with open(path, "rb") as f:
        cal = icalendar.Calendar.from_ical(f.read())
    out = []
    for ev in recurring_ical_events.of(cal).between(start, end):
        dtstart = ev.get("DTSTART")
        dtend = ev.get("DTEND")
        out.append(
            {
                "uid": str(ev.get("UID", "")),
                "start": fmt(dtstart.dt) if dtstart is not None else None,
                "end": fmt(dtend.dt) if dtend is not None else None,
            }
        )
    return out


def main():
    start = datetime.date.fromisoformat(sys.argv[1])
    end = datetime.date.fromisoformat(sys.argv[2])
    signal.signal(signal.SIGALRM, on_alarm)
    for path in sys.argv[3:]:
        t0 = time.perf_counter()
        c0 = time.process_time()
        result = {"file": path, "error": None, "occurrences": []}
        signal.alarm(PER_FILE_TIMEOUT_S)
        try:
            result["occurrences"] = occurrences(path, start, end)
        except Timeout:
            result["error"] = f"timeout after {PER_FILE_TIMEOUT_S} s"
        except Exception as e:  # the reference failing is a data point, not a crash
            result["error"] = f"{type(e).__name__}: {e}"[:300]
        finally:
            signal.alarm(0)
        result["seconds"] = time.perf_counter() - t0
        result["cpu_seconds"] = time.process_time() - c0
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
