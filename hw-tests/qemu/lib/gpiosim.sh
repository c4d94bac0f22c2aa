# gpio-sim helpers for scenarios (source this file). gpio-sim is driven through configfs, like
# the kernel's own tools/testing/selftests/gpio/gpio-sim.sh:
#   gpiosim_create NAME NUM_LINES [LINE_NAME…]  → prints the chip (gpiochipN) once it is live
#   gpiosim_pull CHIP OFFSET up|down            → drives an input line (what a button does)
#   gpiosim_value CHIP OFFSET                   → reads a line (what an LED output shows)
#   gpiosim_remove NAME
GPIOSIM_CONFIGFS=/sys/kernel/config/gpio-sim

gpiosim_create() {
  local name=$1 lines=$2 i=0 dir
  shift 2
  [ -d "$GPIOSIM_CONFIGFS" ] || { echo "gpio-sim is not loaded (no $GPIOSIM_CONFIGFS)" >&2; return 1; }
  dir="$GPIOSIM_CONFIGFS/$name"
  mkdir "$dir" "$dir/gpio-bank0" || return 1
  echo "$lines" >"$dir/gpio-bank0/num_lines"
  for line_name in "$@"; do
    mkdir "$dir/gpio-bank0/line$i"
    echo "$line_name" >"$dir/gpio-bank0/line$i/name"
    i=$((i + 1))
  done
  echo 1 >"$dir/live" || return 1
  cat "$dir/gpio-bank0/chip_name"
}

gpiosim_sysfs() { # CHIP OFFSET → the sim_gpioN directory of that line
  local d
  for d in /sys/devices/platform/gpio-sim.*/"$1"; do
    [ -d "$d" ] && { echo "$d/sim_gpio$2"; return 0; }
  done
  echo "no gpio-sim chip $1" >&2
  return 1
}

gpiosim_pull() { echo "pull-$3" >"$(gpiosim_sysfs "$1" "$2")/pull"; }
gpiosim_value() { cat "$(gpiosim_sysfs "$1" "$2")/value"; }

gpiosim_remove() {
  local dir="$GPIOSIM_CONFIGFS/$1"
  [ -d "$dir" ] || return 0
  echo 0 >"$dir/live"
  rmdir "$dir"/gpio-bank0/line* 2>/dev/null
  rmdir "$dir/gpio-bank0" "$dir"
}
