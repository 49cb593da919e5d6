#!/usr/bin/env python3
"""A kubefan remote subscriber in Python, written from docs/protocol.md only.

It follows one stream of a kubefand broker, keeps a mirror of it in a dict
and prints every change:

    python3 kubefan_sub.py --pub ipc:///tmp/kubefand.pub \
        --rep ipc:///tmp/kubefand.rep --stream configmaps

Gaps (nng PUB drops messages for slow peers), broker restarts and lost
tail messages are detected from sequence numbers, incarnation ids and
heartbeats, and repaired by fetching a snapshot over REQ/REP.
"""

import argparse
import json
import os
import signal
import struct
import sys
import time

import pynng

VERSION = 1
EVENTS, HEARTBEAT, RESET = 1, 2, 3
SNAPSHOT_REQ, SNAPSHOT_NEXT_REQ, STATUS_REQ = 17, 18, 19
SNAPSHOT_REP, STATUS_REP = 33, 35
ST_OK, ST_NOTREADY = 0, 2
APPLY, DELETE = 4, 5
CONTROL_NS = b"!"


class Malformed(Exception):
    pass


class Reader:
    """Little-endian reads that refuse to run past the end."""

    def __init__(self, data, off=0):
        self.d = data
        self.o = off

    def take(self, n):
        if n > len(self.d) - self.o:
            raise Malformed("truncated")
        b = self.d[self.o:self.o + n]
        self.o += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def str(self):
        b = self.take(self.u16())
        if b"\0" in b:
            raise Malformed("NUL in string")
        return b.decode()

    def blob(self):
        return self.take(self.u32())

    def header(self):
        if self.take(2) != b"KF":
            raise Malformed("bad magic")
        version, mtype = self.u8(), self.u8()
        if version != VERSION:
            raise Malformed("unsupported version %d" % version)
        self.u32()  # flags
        return mtype, self.u64()

    def end(self):
        if self.o != len(self.d):
            raise Malformed("trailing bytes")


def read_object(r):
    has_json = r.u8()
    if has_json > 1:
        raise Malformed("bad has_json")
    obj = {
        "apiVersion": r.str(),
        "kind": r.str(),
        "namespace": r.str(),
        "name": r.str(),
        "uid": r.str(),
        "resourceVersion": r.str(),
    }
    if not obj["name"]:
        raise Malformed("object without a name")
    obj["json"] = json.loads(r.blob()) if has_json else None
    return obj


def put_str(s):
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def request_header(mtype):
    return b"KF" + struct.pack("<BBIQ", VERSION, mtype, 0, 0)


class Subscriber:
    def __init__(self, args):
        self.args = args
        self.stream = args.stream
        self.ns = args.namespace or ""
        self.sub = pynng.Sub0(recv_timeout=200, recv_buffer_size=8192)
        topic = self.stream.encode() + b"\0"
        if self.ns:
            self.sub.subscribe(topic + self.ns.encode() + b"\0")
            self.sub.subscribe(topic + CONTROL_NS + b"\0")
        else:
            self.sub.subscribe(topic)
        self.sub.dial(args.pub, block=False)
        self.req = pynng.Req0(recv_timeout=5000, send_timeout=5000)
        self.req.dial(args.rep, block=False)
        self.mirror = {}  # (namespace, name) -> object
        self.inc = None
        self.seq = 0
        self.tlast = 0
        self.need_snapshot = True
        self.last_msg = time.monotonic()
        self.interval = 1.0
        self.stats = dict(messages=0, applied=0, gaps=0, resyncs=0,
                          snapshots=0, malformed=0, duplicates=0)

    # -- requests --

    def call(self, payload, want):
        self.req.send(payload)
        r = Reader(self.req.recv())
        mtype, inc = r.header()
        if mtype != want:
            raise Malformed("unexpected reply type %d" % mtype)
        return r, inc

    def snapshot(self):
        body = (request_header(SNAPSHOT_REQ) + put_str(self.stream) +
                put_str(self.ns) + struct.pack("<BI", 1, 0))
        r, inc = self.call(body, SNAPSHOT_REP)
        status, _ready = r.u8(), r.u8()
        snap_id, seq, topic_last = r.u64(), r.u64(), r.u64()
        total, offset, count = r.u32(), r.u32(), r.u32()
        if status != ST_OK:
            raise Malformed("snapshot status %d" % status)
        objs = [read_object(r) for _ in range(count)]
        r.end()
        while offset + count < total:
            offset += count
            body = (request_header(SNAPSHOT_NEXT_REQ) +
                    struct.pack("<QII", snap_id, offset, 0))
            r, inc2 = self.call(body, SNAPSHOT_REP)
            status, _ready = r.u8(), r.u8()
            sid, seq2, _tl = r.u64(), r.u64(), r.u64()
            _total, off2, count = r.u32(), r.u32(), r.u32()
            if (status != ST_OK or inc2 != inc or sid != snap_id or
                    seq2 != seq or off2 != offset or count == 0):
                raise Malformed("snapshot chunk does not continue")
            objs += [read_object(r) for _ in range(count)]
            r.end()
        old = self.mirror
        self.mirror = {(o["namespace"], o["name"]): o for o in objs}
        self.report_diff(old, self.mirror)
        first = self.inc is None
        self.inc, self.seq, self.tlast = inc, seq, topic_last
        self.need_snapshot = False
        self.stats["snapshots"] += 1
        if not first:
            self.stats["resyncs"] += 1
        print("[python] synced: %d objects at seq %d" %
              (len(self.mirror), seq), flush=True)

    def status_topic_last(self):
        body = (request_header(STATUS_REQ) + put_str(self.stream) +
                put_str(self.ns))
        r, inc = self.call(body, STATUS_REP)
        status, _ready = r.u8(), r.u8()
        _last, _base, topic_last = r.u64(), r.u64(), r.u64()
        r.str()
        return inc, status, topic_last

    # -- changes --

    def report(self, what, o):
        print("[python] %s %s/%s rv=%s" % (what, o["namespace"], o["name"],
                                          o["resourceVersion"]), flush=True)

    def report_diff(self, old, new):
        for k, o in new.items():
            if k not in old:
                self.report("ADDED", o)
            elif old[k]["resourceVersion"] != o["resourceVersion"]:
                self.report("MODIFIED", o)
        for k, o in old.items():
            if k not in new:
                self.report("DELETED", o)

    def gap(self):
        self.stats["gaps"] += 1
        self.need_snapshot = True

    def on_message(self, data):
        self.stats["messages"] += 1
        self.last_msg = time.monotonic()
        z1 = data.index(b"\0")
        z2 = data.index(b"\0", z1 + 1)
        if data[:z1].decode() != self.stream:
            return
        r = Reader(data, z2 + 1)
        mtype, inc = r.header()
        if self.need_snapshot:
            return  # the snapshot will cover it
        if inc != self.inc:
            print("[python] broker restarted; re-syncing", flush=True)
            self.need_snapshot = True
            return
        if mtype == EVENTS:
            count = r.u32()
            records = []
            for _ in range(count):
                seq, prev, etype, _flags = (r.u64(), r.u64(), r.u8(),
                                            r.u8())
                if etype not in (APPLY, DELETE) or prev >= seq:
                    raise Malformed("bad record")
                records.append((seq, prev, etype, read_object(r)))
            r.end()
            for seq, prev, etype, o in records:
                if seq <= self.seq:
                    self.stats["duplicates"] += 1
                    continue
                if (not self.ns and seq != self.seq + 1) or \
                        (self.ns and prev != self.tlast):
                    self.gap()
                    return
                key = (o["namespace"], o["name"])
                if etype == APPLY:
                    what = "MODIFIED" if key in self.mirror else "ADDED"
                    self.mirror[key] = o
                else:
                    what = "DELETED"
                    self.mirror.pop(key, None)
                self.report(what, o)
                self.seq = self.tlast = seq
                self.stats["applied"] += 1
        elif mtype == HEARTBEAT:
            last, _base, ready, interval = (r.u64(), r.u64(), r.u8(),
                                            r.u32())
            r.end()
            if ready > 2:
                raise Malformed("heartbeat readiness out of range")
            self.interval = max(interval, 100) / 1000.0
            if last > self.seq:
                if not self.ns:
                    self.gap()
                    return
                inc2, status, topic_last = self.status_topic_last()
                if inc2 != self.inc or status != ST_OK:
                    return
                if topic_last == self.tlast:
                    self.seq = last
                elif self.tlast < topic_last <= last:
                    self.gap()
        elif mtype == RESET:
            seq, reason = r.u64(), r.u8()
            r.end()
            if reason not in (1, 2):
                raise Malformed("reset reason out of range")
            if seq > self.seq:
                self.need_snapshot = True

    def dump(self, path):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("stats %s objects=%d\n" % (
                " ".join("%s=%d" % kv for kv in self.stats.items()),
                len(self.mirror)))
            for k in sorted(self.mirror):
                o = self.mirror[k]
                f.write("%s/%s %s\n" % (k[0], k[1], o["resourceVersion"]))
        os.replace(tmp, path)

    def run(self, stop):
        backoff = 0.1
        next_dump = 0.0
        # Wait for the first message (the link is up), at most 1 s.
        try:
            self.sub.recv()
        except pynng.Timeout:
            pass
        while not stop():
            if self.need_snapshot:
                try:
                    self.snapshot()
                    backoff = 0.1
                except (pynng.NNGException, Malformed, ValueError) as e:
                    print("[python] snapshot failed (%s); retry in %.1fs"
                          % (e, backoff), file=sys.stderr, flush=True)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
            try:
                data = self.sub.recv()
                try:
                    self.on_message(data)
                except (Malformed, ValueError, UnicodeDecodeError):
                    self.stats["malformed"] += 1
            except pynng.Timeout:
                pass
            if time.monotonic() - self.last_msg > 3 * self.interval:
                print("[python] broker silent; keeping the mirror",
                      file=sys.stderr, flush=True)
                self.last_msg = time.monotonic()
            if self.args.dump and time.monotonic() >= next_dump:
                self.dump(self.args.dump)
                next_dump = time.monotonic() + 0.2
        if self.args.dump:
            self.dump(self.args.dump)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pub", default="ipc:///tmp/kubefand.pub")
    p.add_argument("--rep", default="ipc:///tmp/kubefand.rep")
    p.add_argument("--stream", required=True)
    p.add_argument("--namespace", default="")
    p.add_argument("--dump", help="rewrite this file with the mirror")
    p.add_argument("--duration", type=float, default=0)
    args = p.parse_args()
    stopped = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.append(1))
    end = time.monotonic() + args.duration if args.duration else None
    s = Subscriber(args)
    s.run(lambda: stopped or (end is not None and time.monotonic() > end))
    s.sub.close()
    s.req.close()


if __name__ == "__main__":
    main()
