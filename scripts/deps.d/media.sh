#!/usr/bin/env bash
# Dependencies of the media engine crate (daemon/media, `visio-room-media`):
# GStreamer 1.22 development headers for building, and the plugins its pipelines and
# tests use at run time. Usage: scripts/deps.d/media.sh <repo root> (unused: everything here
# is a system package). Idempotent, non-interactive, runs as root; assumes `apt-get update`.
#
#   element(s)                                  package
#   videotestsrc audiotestsrc videoconvert        gstreamer1.0-plugins-base
#   videoscale videorate compositor audiomixer
#   opusenc opusdec rtpopuspay appsrc appsink
#   alsasrc alsasink                              gstreamer1.0-alsa
#   textoverlay/timeoverlay                       gstreamer1.0-plugins-base (pango)
#   v4l2src v4l2h264enc vp8enc/dec vp9enc/dec     gstreamer1.0-plugins-good
#   rtpjitterbuffer rtph264pay/depay rtpvp8*      gstreamer1.0-plugins-good
#   jpegdec level autovideosink ximagesink        gstreamer1.0-plugins-good / -x
#   webrtcdsp webrtcechoprobe h264parse kmssink  gstreamer1.0-plugins-bad
#   openh264enc/dec vah264enc/dec                 gstreamer1.0-plugins-bad
#   x264enc                                       gstreamer1.0-plugins-ugly
#   avdec_h264                                    gstreamer1.0-libav
#   vaapih264enc                                  gstreamer1.0-vaapi (optional, hardware)
#   gst-launch-1.0 gst-inspect-1.0 (benchmark)    gstreamer1.0-tools
# Not libgstreamer-plugins-bad1.0-dev: no crate here links to -bad libraries, and it pulls in
# the OpenCV development packages.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends \
    pkg-config \
    libglib2.0-dev \
    libgstreamer1.0-dev \
    libgstreamer-plugins-base1.0-dev \
    gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly \
    gstreamer1.0-libav \
    gstreamer1.0-alsa \
    gstreamer1.0-x \
    gstreamer1.0-tools \
    gstreamer1.0-vaapi
