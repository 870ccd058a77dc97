#!/usr/bin/python3
"""A test RTSP server on 127.0.0.1: a live H.264 test pattern at rtsp://127.0.0.1:PORT/test.

Started and killed by the integration tests to simulate a camera that goes away.
Uses Debian's gst-rtsp-server through PyGObject (python3-gi, gir1.2-gst-rtsp-server-1.0).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,format=I420,width=320,height=240,framerate=15/1 "
    "! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=15 "
    "! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/test", factory)
if server.attach(None) == 0:
    sys.exit("cannot bind 127.0.0.1:" + port)
print("READY", flush=True)
GLib.MainLoop().run()
