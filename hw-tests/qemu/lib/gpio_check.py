#!/usr/bin/python3
"""Checks a gpio-sim chip through the GPIO character device, uAPI v2 (linux/gpio.h), with
nothing but ioctl: chip info, an input line's value and edge events driven by the simulator's
pull, kernel debounce of a bouncing input (one event), and an output line read back by the
simulator. Usage: gpio_check.py /dev/gpiochipN /sys/devices/platform/gpio-sim.X/gpiochipN
Exit 0 when every check passes; prints what it saw."""
import fcntl
import os
import select
import struct
import sys
import time


def iowr(nr, size):
    return (3 << 30) | (size << 16) | (0xB4 << 8) | nr


def ior(nr, size):
    return (2 << 30) | (size << 16) | (0xB4 << 8) | nr


GPIO_GET_CHIPINFO = ior(0x01, 68)
REQ_SIZE = 592  # struct gpio_v2_line_request
GPIO_V2_GET_LINE = iowr(0x07, REQ_SIZE)
GPIO_V2_LINE_GET_VALUES = iowr(0x0E, 16)
GPIO_V2_LINE_SET_VALUES = iowr(0x0F, 16)
FLAG_INPUT, FLAG_OUTPUT = 1 << 2, 1 << 3
FLAG_EDGE_RISING, FLAG_EDGE_FALLING = 1 << 4, 1 << 5
ATTR_ID_OUTPUT_VALUES, ATTR_ID_DEBOUNCE = 2, 3
EVENT_SIZE = 48  # struct gpio_v2_line_event
# Long enough that the five pull changes of the bounce (each a sysfs write from Python, slow
# under TCG) all fall inside it.
DEBOUNCE_US = 100_000
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def request(chip_fd, offset, flags, consumer, attrs=()):
    """attrs: (id, value, mask) triples; returns the line request's fd."""
    buf = bytearray(REQ_SIZE)
    struct.pack_into("I", buf, 0, offset)
    struct.pack_into("32s", buf, 256, consumer.encode())
    struct.pack_into("QI", buf, 288, flags, len(attrs))  # config.flags, config.num_attrs
    for i, (attr_id, value, mask) in enumerate(attrs):
        base = 288 + 32 + 24 * i  # config.attrs[i]
        if attr_id == ATTR_ID_DEBOUNCE:
            struct.pack_into("IIIIQ", buf, base, attr_id, 0, value, 0, mask)
        else:
            struct.pack_into("IIQQ", buf, base, attr_id, 0, value, mask)
    struct.pack_into("I", buf, 560, 1)  # num_lines
    fcntl.ioctl(chip_fd, GPIO_V2_GET_LINE, buf)
    return struct.unpack_from("i", buf, 588)[0]


def value(line_fd):
    buf = bytearray(struct.pack("QQ", 0, 1))
    fcntl.ioctl(line_fd, GPIO_V2_LINE_GET_VALUES, buf)
    return struct.unpack("QQ", buf)[0] & 1


def events(line_fd, wait_s):
    """Every edge event that arrives within wait_s: a list of 'rising'/'falling'."""
    seen, deadline = [], time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([line_fd], [], [], left)[0]:
            return seen
        data = os.read(line_fd, EVENT_SIZE * 16)
        for i in range(0, len(data), EVENT_SIZE):
            _ts, kind, _off = struct.unpack_from("QII", data, i)
            seen.append({1: "rising", 2: "falling"}.get(kind, str(kind)))


def pull(sim_dir, offset, how):
    with open(f"{sim_dir}/sim_gpio{offset}/pull", "w") as f:
        f.write(f"pull-{how}")


def main(chip_dev, sim_dir):
    chip = os.open(chip_dev, os.O_RDWR)
    info = bytearray(68)
    fcntl.ioctl(chip, GPIO_GET_CHIPINFO, info)
    name, label, lines = struct.unpack("32s32sI", info)
    name, label = (s.split(b"\0")[0].decode() for s in (name, label))
    print(f"chip {name} label {label} lines {lines}")
    check(lines >= 3, f"the chip has at least 3 lines ({lines})")

    # An input, both edges: the simulator's pull drives it like a button would.
    pull(sim_dir, 0, "down")
    line = request(chip, 0, FLAG_INPUT | FLAG_EDGE_RISING | FLAG_EDGE_FALLING, "hw-smoke")
    check(value(line) == 0, "input reads 0 when pulled down")
    pull(sim_dir, 0, "up")
    ev = events(line, 1.0)
    check(value(line) == 1, "input reads 1 when pulled up")
    check(ev == ["rising"], f"one rising edge event ({ev})")
    pull(sim_dir, 0, "down")
    ev = events(line, 1.0)
    check(ev == ["falling"], f"one falling edge event ({ev})")
    os.close(line)

    # Kernel debounce (gpiolib-cdev's software debounce: gpio-sim has none of its own): a
    # bouncing contact, five changes within a few milliseconds, then held → one rising edge.
    pull(sim_dir, 1, "down")
    line = request(chip, 1, FLAG_INPUT | FLAG_EDGE_RISING | FLAG_EDGE_FALLING, "hw-smoke-debounce",
                   [(ATTR_ID_DEBOUNCE, DEBOUNCE_US, 1)])
    t = time.monotonic()
    for how in ("up", "down", "up", "down", "up"):
        pull(sim_dir, 1, how)
    bounce_ms = (time.monotonic() - t) * 1000
    check(bounce_ms < DEBOUNCE_US / 1000, f"the bounce ({bounce_ms:.1f} ms) fits in the debounce period")
    ev = events(line, 0.5)
    check(ev == ["rising"], f"a bounce of {bounce_ms:.1f} ms with {DEBOUNCE_US // 1000} ms debounce gives one rising edge ({ev})")
    os.close(line)

    # An output, read back by the simulator (what an LED shows).
    line = request(chip, 2, FLAG_OUTPUT, "hw-smoke-led", [(ATTR_ID_OUTPUT_VALUES, 1, 1)])
    with open(f"{sim_dir}/sim_gpio2/value") as f:
        check(f.read().strip() == "1", "output set to 1 reads 1 in the simulator")
    fcntl.ioctl(line, GPIO_V2_LINE_SET_VALUES, bytearray(struct.pack("QQ", 0, 1)))
    with open(f"{sim_dir}/sim_gpio2/value") as f:
        check(f.read().strip() == "0", "output set to 0 reads 0 in the simulator")
    os.close(line)
    os.close(chip)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
