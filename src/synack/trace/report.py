"""One self-contained HTML page per run: diagram, plots, explained timeline, stepper.

``synack report TRACE -o report.html`` writes a single file that needs no
network access: the sequence diagram is inline SVG (:mod:`synack.trace.diagram`),
the plots are PNG data URIs when matplotlib is installed (else the CSV data
as downloadable data URIs), the explained timeline comes from
:mod:`synack.trace.narrate`, and a small vanilla-JS control steps through the
segments one by one (buttons or the arrow keys), highlighting the arrow and
showing, for both ends, the state, the window each advertises (C4), the
bytes in flight and cwnd after that segment was sent.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from .concepts import CONCEPTS
from .diagram import render_svg
from .model import Run, analyze, conn_ips
from .narrate import Explainer
from .plots import NO_MATPLOTLIB, csv_texts, cwnd_rtt_png, matplotlib_available, timeseq_png
from .schema import TraceRecord
from .step import Step
from .words import CONCEPT_ID

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#20344f;color:#fff;padding:12px 20px}
header h1{font-size:20px;margin:0}
header p{margin:4px 0 0;opacity:.85}
main{padding:12px 20px;max-width:1500px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:10px 14px}
h2{font-size:16px;margin:4px 0 10px}
#stepper{position:sticky;top:0;z-index:2;box-shadow:0 2px 6px rgba(0,0,0,.08)}
#stepper button{font-size:14px;padding:4px 14px;margin-right:6px}
#step-pos{font-family:monospace;margin:0 10px}
#step-head{font-family:monospace;font-weight:bold;margin:6px 0 2px}
#step-text{margin:2px 0 8px}
#ends{border-collapse:collapse}
#ends td,#ends th{border:1px solid #ccc;padding:3px 10px;text-align:left;font-family:monospace}
#ends th{background:#eef2f7}
.lostmark{color:#c00;font-weight:bold}
#diagram{overflow:auto;max-height:70vh}
#timeline{font-family:monospace;font-size:12.5px;max-height:60vh;overflow:auto}
#timeline div{padding:1px 4px;border-left:3px solid transparent;white-space:pre-wrap}
#timeline div.segline{cursor:pointer}
#timeline div.cur{background:#e3ecfb;border-left-color:#2f6fd6}
#timeline .why{color:#555}
#timeline .tag{color:#0b5394}
.plots img{max-width:100%;border:1px solid #eee;margin:4px 0}
.concepts dt{font-weight:bold;float:left;clear:left;width:3em}.concepts dd{margin:0 0 4px 3.5em}
a.concept{color:inherit}
"""

JS = """
(function(){
  var steps = JSON.parse(document.getElementById('steps-data').textContent);
  var hosts = JSON.parse(document.getElementById('hosts-data').textContent);
  var cur = -1;
  function cell(v){ return (v === null || v === undefined) ? '-' : String(v); }
  function show(i){
    if (!steps.length) { return; }
    i = Math.max(0, Math.min(steps.length - 1, i));
    var prev = document.querySelector('#diagram .seg.cur');
    if (prev) { prev.classList.remove('cur'); }
    var oldLine = document.querySelector('#timeline div.cur');
    if (oldLine) { oldLine.classList.remove('cur'); }
    cur = i;
    var s = steps[i];
    document.getElementById('step-pos').textContent = 'segment ' + (i + 1) + ' / ' + steps.length;
    document.getElementById('step-head').textContent =
      s.t.toFixed(4) + 's  ' + s.who + ' ' + s.header;
    var text = document.getElementById('step-text');
    text.textContent = s.text + (s.tag ? '  ' + s.tag : '');
    var lost = document.getElementById('step-lost');
    lost.textContent = s.lost ? 'lost in the network (' + s.lost + ')' : '';
    var body = document.getElementById('ends-body');
    while (body.firstChild) { body.removeChild(body.firstChild); }
    hosts.forEach(function(h){
      var snap = s.ends[h.ip] || {};
      var tr = document.createElement('tr');
      [h.role + ' ' + h.ip, snap.state, snap.rcv_wnd, snap.peer_wnd, snap.in_flight,
       snap.cwnd].forEach(function(v){
        var td = document.createElement('td'); td.textContent = cell(v); tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    var g = document.getElementById('seg-' + s.seg);
    if (g) {
      g.classList.add('cur');
      if (g.scrollIntoView) { g.scrollIntoView({block: 'nearest', inline: 'nearest'}); }
    }
    var line = document.querySelector('#timeline div[data-seg="' + s.seg + '"]');
    if (line) {
      line.classList.add('cur');
      var box = document.getElementById('timeline');
      box.scrollTop = line.offsetTop - box.offsetTop - 40;
    }
    document.getElementById('prev').disabled = i === 0;
    document.getElementById('next').disabled = i === steps.length - 1;
    document.body.setAttribute('data-step', String(i));
  }
  window.synackStep = function(i){ show(i); return cur; };
  document.getElementById('prev').addEventListener('click', function(){ show(cur - 1); });
  document.getElementById('next').addEventListener('click', function(){ show(cur + 1); });
  document.addEventListener('keydown', function(e){
    if (e.key === 'ArrowRight') { show(cur + 1); }
    if (e.key === 'ArrowLeft') { show(cur - 1); }
  });
  Array.prototype.forEach.call(document.querySelectorAll('#timeline div.segline'),
    function(el){
      el.addEventListener('click', function(){
        var n = parseInt(el.getAttribute('data-seg'), 10);
        for (var k = 0; k < steps.length; k++) { if (steps[k].seg === n) { show(k); return; } }
      });
    });
  Array.prototype.forEach.call(document.querySelectorAll('#diagram .seg'), function(el){
    el.addEventListener('click', function(){
      var n = parseInt(el.getAttribute('data-step'), 10);
      for (var k = 0; k < steps.length; k++) { if (steps[k].seg === n) { show(k); return; } }
    });
  });
  show(0);
})();
"""


def _link(m: re.Match[str]) -> str:
    cid = m.group(0)
    return f'<a class="concept" href="#concept-{cid}">{cid}</a>' if cid in CONCEPTS else cid


def _link_concepts(html_text: str) -> str:
    """Each catalogued concept ID in already-escaped text becomes a link to its entry below."""
    return CONCEPT_ID.sub(_link, html_text)


def _json_script(ident: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{ident}">{text}</script>'


#: What the stepper shows for an end whose stack wrote no trace (the kernel's).
UNTRACED = {"state": "not traced (its own stack)"}


def traced_hosts(run: Run) -> set[str]:
    """The hosts whose own stack wrote records (the others are only seen on the wire)."""
    return {
        conn_ips(conn)[0]
        for r in run.records
        if (conn := r.get("conn")) and r["ev"] in ("open", "state", "seg", "timer")
    }


def _step_data(run: Run, steps: list[Step], absolute: bool = False) -> list[dict[str, Any]]:
    """One step per segment on the wire, sent or only seen arriving, in time order
    (so the stepper's count is the page's segment count)."""
    by_seg = {s.seg: s for s in steps if s.seg is not None and s.kind in ("seg", "seg_in")}
    traced = traced_hosts(run)
    out = []
    for seg in sorted(run.segments, key=lambda x: (x.t_sort, x.index)):
        st = by_seg.get(seg.index)
        ends = {ip: seg.snapshot.get(ip, {}) if ip in traced else UNTRACED for ip in run.hosts}
        peer = run.role(seg.dst)
        out.append(
            {
                "seg": seg.index,
                "t": seg.t_sort,
                "who": run.role(seg.src),
                "header": st.header
                if st is not None and st.kind == "seg"
                else f"-> {peer:<7} {seg.label(absolute)}",
                "text": st.text if st else seg.text,
                "tag": st.tag() if st else "",
                "lost": seg.lost,
                "ends": ends,
            }
        )
    return out


def clock_words(run: Run) -> str:
    """How to read the trace's times: virtual (simulator) or measured on a real link."""
    for r in run.records:
        if r["ev"] == "run" and r.get("clock") == "wall":
            return "measured (seconds since the command started)"
    return "virtual time"


def _plots_html(run: Run) -> str:
    if matplotlib_available():
        imgs = []
        for name, data in (
            ("time-sequence graph", timeseq_png(run)),
            ("cwnd, ssthresh, RTT and RTO", cwnd_rtt_png(run)),
        ):
            if data is not None:
                b64 = base64.b64encode(data).decode("ascii")
                imgs.append(f'<img alt="{escape(name)}" src="data:image/png;base64,{b64}">')
        if imgs:
            return "\n".join(imgs)
        return "<p>nothing to plot in this run.</p>"
    links = []
    for name, text in csv_texts(run).items():
        b64 = base64.b64encode(text.encode()).decode("ascii")
        links.append(f'<a download="{name}" href="data:text/csv;base64,{b64}">{name}</a>')
    return f"<p>{escape(NO_MATPLOTLIB)}.</p><p>Data: {' · '.join(links)}</p>"


def render_report(
    records: Iterable[TraceRecord],
    *,
    roles: dict[str, str] | None = None,
    title: str = "synack report",
    absolute: bool = False,
) -> str:
    """The whole page as one HTML string."""
    run = analyze(records, roles)
    steps = list(Explainer(run, absolute=absolute).steps())
    svg = render_svg(run, absolute=absolute)
    stepdata = _step_data(run, steps, absolute)
    hosts = [{"ip": ip, "role": run.role(ip)} for ip in run.hosts]
    n_retx = sum(1 for s in run.segments if s.retransmit)
    n_lost = sum(1 for s in run.segments if s.lost)
    times = [float(r.get("t", 0.0)) for r in run.records]
    t_span = (max(times) - min(times)) if times else 0.0
    unknown = "(not in this version's catalogue)"
    concepts = "".join(
        f'<dt id="concept-{c}">{c}</dt><dd>{escape(CONCEPTS.get(c, unknown))}</dd>'
        for c in run.concepts
    )
    timeline = []
    for st in steps:
        cls = "segline" if st.seg is not None and st.kind == "seg" else ""
        attr = f' data-seg="{st.seg}"' if cls else ""
        why = f'\n{"":21}<span class="why">{escape(st.text)}</span>' if st.text else ""
        tag = f' <span class="tag">{_link_concepts(escape(st.tag()))}</span>' if st.tag() else ""
        head = f"{st.t:10.4f}s  {st.who:<7} {st.header}"
        timeline.append(f'<div class="{cls}"{attr}>{escape(head)}{why}{tag}</div>')
    who = ", ".join(f"{escape(run.role(ip))} {escape(ip)}" for ip in run.hosts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{escape(title)}</h1>
<p>{who}; {len(run.segments)} segments, {n_retx} retransmissions, {n_lost} lost;
{t_span:.3f} s ({clock_words(run)}). Relative sequence numbers
{"off" if absolute else "on"}.</p></header>
<main>
<section id="stepper"><h2>Step through the segments</h2>
<button id="prev" type="button">&larr; previous</button><button id="next" type="button">next
&rarr;</button><span id="step-pos"></span><span id="step-lost" class="lostmark"></span>
<div id="step-head"></div><div id="step-text"></div>
<table id="ends"><thead><tr><th>end</th><th>state</th><th>window it advertises</th>
<th>peer's window</th><th>bytes in flight</th><th>cwnd</th></tr></thead>
<tbody id="ends-body"></tbody></table></section>
<section><h2>Sequence diagram</h2><div id="diagram">{svg}</div></section>
<section class="plots"><h2>Plots</h2>{_plots_html(run)}</section>
<section><h2>Explained timeline</h2><div id="timeline">{"".join(timeline)}</div></section>
<section class="concepts"><h2>Concepts seen in this run</h2>
<p>Each ID in the timeline links here; the whole catalogue is docs/concepts.md.</p>
<dl>{concepts}</dl></section>
</main>
{_json_script("steps-data", stepdata)}
{_json_script("hosts-data", hosts)}
<script>{JS}</script>
</body>
</html>
"""


def write_report(records: Iterable[TraceRecord], path: str | Path, **kw: Any) -> Path:
    """Render :func:`render_report` into ``path``; returns the path."""
    p = Path(path)
    p.write_text(render_report(records, **kw), encoding="utf-8")
    return p
