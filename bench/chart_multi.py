#!/usr/bin/env python3
"""chart_multi.py MULTI.TSV OUT.SVG - bench_multi's curve as an SVG line chart:
ns/packet (log scale) against the number of rules (log scale) for the matcher,
bpfkit's JIT on every rule and libpcap on every rule, and the build time (ms)
beside each matcher point.  No dependencies beyond the standard library."""
import math
import sys


def main():
    rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
    head, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    n = [float(r[col['rules']]) for r in rows]
    series = [('multi (bpfkit_multi_match)', 'ns_multi', '#1b7837'),
              ('bpfkit jit, every rule', 'ns_jit_each', '#2166ac'),
              ('libpcap bpf_filter, every rule', 'ns_libpcap_each', '#b2182b')]
    vals = [float(r[col[k]]) for r in rows for _, k, _ in series]
    lo, hi = math.log10(max(min(vals), 1)), math.log10(max(vals))
    w, h, l, t, b = 760, 460, 80, 40, 60
    pw, ph = w - l - 220, h - t - b
    nx0, nx1 = math.log10(min(n)), math.log10(max(n))
    def x(v):
        return l + (math.log10(v) - nx0) / max(nx1 - nx0, 1e-9) * pw
    def y(v):
        return t + ph - (math.log10(max(v, 1)) - lo) / max(hi - lo, 1e-9) * ph
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">ns/packet against number of rules '
           '(log-log); labels: matcher build time</text>' % l]
    for d in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        yy = y(10 ** d)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (l, l + pw, yy, yy))
        out.append('<text x="%d" y="%.1f" text-anchor="end">1e%d</text>' % (l - 5, yy + 4, d))
    for v in n:
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x(v), t + ph + 18, v))
    out.append('<text x="%d" y="%d" text-anchor="middle">rules</text>' % (l + pw / 2, h - 15))
    for i, (name, key, color) in enumerate(series):
        pts = ' '.join('%.1f,%.1f' % (x(nv), y(float(r[col[key]]))) for nv, r in zip(n, rows))
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (color, pts))
        out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (l + pw + 10, t + 20 + 18 * i, color, name))
    for nv, r in zip(n, rows):
        out.append('<text x="%.1f" y="%.1f" font-size="10">%.0f ms</text>'
                   % (x(nv) + 4, y(float(r[col['ns_multi']])) + 14, float(r[col['build_s']]) * 1000))
    out.append('</svg>')
    open(sys.argv[2], 'w').write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
