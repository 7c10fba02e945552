#!/usr/bin/env python3
"""bench/chart.py - draws bench_interp's TSVs as one SVG bar chart (stdlib only).

usage: chart.py OUT.svg TITLE=FILE.tsv...

One panel per TSV: for each filter (the 50-port list shortened), one bar per
engine giving its speed-up over libpcap's bpf_filter (ratio_vs_libpcap, higher
is faster; libpcap is 1).  Rows marked NA (a peer excluded for wrong
verdicts) are left out; the null loop is drawn as a grey outline.
"""
import sys
from xml.sax.saxutils import escape

COLORS = {"libpcap": "#999999", "interp": "#9ecae1", "fast": "#4292c6", "jit": "#08306b",
          "dpdk-jit": "#e6550d", "interp+cc": "#c7e9c0", "fast+cc": "#74c476",
          "jit+cc": "#00441b"}


def read(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            filt, eng, ns, ratio = line.rstrip("\n").split("\t")
            if ratio != "NA":
                rows.append((filt, eng, float(ns), float(ratio)))
    return rows


def short(name):
    return name if len(name) <= 34 else name[:24] + "... (%d words)" % len(name.split())


def panel(out, y0, title, rows):
    filters = []
    for r in rows:
        if r[0] not in filters:
            filters.append(r[0])
    engines = [e for e in COLORS if any(r[1] == e for r in rows)]
    top = max([r[3] for r in rows if r[1] != "null"] + [1.0])
    top = int(top) + 1
    h, left, bw = 260, 70, 11
    gw = bw * len(engines) + 16
    out.append('<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>'
               % (left, y0 + 18, escape(title)))
    base = y0 + 30 + h
    for t in range(0, top + 1):
        y = base - h * t / top
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, left + gw * len(filters), y, y))
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%dx</text>'
                   % (left - 4, y + 4, t))
    for fi, filt in enumerate(filters):
        x0 = left + fi * gw + 8
        for ei, eng in enumerate(engines):
            r = [r for r in rows if r[0] == filt and r[1] == eng]
            if not r:
                continue
            bh = h * min(r[0][3], top) / top
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s">'
                       '<title>%s %s: %.2f ns, %.2fx</title></rect>'
                       % (x0 + ei * bw, base - bh, bw - 1, bh, COLORS[eng], escape(filt),
                          eng, r[0][2], r[0][3]))
        out.append('<text transform="translate(%d,%d) rotate(35)" font-size="11">%s</text>'
                   % (x0 + 4, base + 14, escape(short(filt))))
    return engines, gw * len(filters) + left + 20


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: chart.py OUT.svg TITLE=FILE.tsv...")
    body, y, width, engines = [], 0, 600, []
    for arg in sys.argv[2:]:
        title, path = arg.split("=", 1)
        rows = [r for r in read(path) if r[1] != "null"]
        engs, w = panel(body, y, title + " - speed-up over libpcap bpf_filter (higher is faster)",
                        rows)
        engines += [e for e in engs if e not in engines]
        width = max(width, w + 230)
        y += 30 + 260 + 130
    lx = width - 210
    for i, e in enumerate(engines):
        body.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                    '<text x="%d" y="%d" font-size="12">%s</text>'
                    % (lx, 40 + 18 * i, COLORS[e], lx + 18, 50 + 18 * i, e))
    body.append('<text x="%d" y="%d" font-size="10" fill="#555">+cc: program from '
                'bpfkit_compile;</text>' % (lx - 20, 60 + 18 * len(engines)))
    body.append('<text x="%d" y="%d" font-size="10" fill="#555">others run libpcap\'s '
                'program</text>' % (lx - 20, 73 + 18 * len(engines)))
    with open(sys.argv[1], "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                'font-family="sans-serif">\n<rect width="100%%" height="100%%" fill="white"/>\n'
                % (width, y + 10))
        f.write("\n".join(body))
        f.write("\n</svg>\n")


main()
