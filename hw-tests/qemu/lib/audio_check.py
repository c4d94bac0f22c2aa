#!/usr/bin/python3
"""Reads raw S16LE interleaved audio (a file captured by GStreamer) and checks it holds a tone:
loud enough and near the expected frequency: the median period between rising zero crossings of
the first channel (a median, so that the gaps of a player that underran under TCG do not count).
Usage: audio_check.py FILE RATE CHANNELS FREQ_HZ"""
import math
import statistics
import struct
import sys

path, rate, channels, freq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = open(path, "rb").read()
n = len(data) // (2 * channels)
samples = [s[0] for s in struct.iter_unpack(f"<{channels}h", data[: n * 2 * channels])]
# Skip the first 100 ms: the loopback may start with silence before the player's first period.
samples = samples[rate // 10:]
if len(samples) < rate // 4:
    sys.exit(f"only {len(samples)} samples captured (want at least {rate // 4})")
rms = math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768
rising = [i + a / (a - b) for i, (a, b) in enumerate(zip(samples, samples[1:])) if a < 0 <= b]
if len(rising) < 10:
    sys.exit(f"only {len(rising)} rising zero crossings: no tone came through")
measured = rate / statistics.median(b - a for a, b in zip(rising, rising[1:]))
print(f"{len(samples)} samples, rms {rms:.3f} of full scale, {measured:.0f} Hz (expected {freq:.0f})")
if rms < 0.05:
    sys.exit("too quiet: no tone came through")
if abs(measured - freq) > freq * 0.05:
    sys.exit("the tone came through at the wrong frequency")
