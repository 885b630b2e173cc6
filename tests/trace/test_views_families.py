"""Every view of a run (timeline, explain, diagrams, plots, report, roles) names the
hosts the same way over IPv4 and IPv6: by role, with the address as RFC 5952 text and
never the bracketed ``[v6]:port`` endpoint spelling split in the wrong place."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET

import pytest

from synack.scenarios.scenario import CLIENT_IP, CLIENT_IP6, SERVER_IP, SERVER_IP6, Scenario
from synack.sim import PathConfig
from synack.tcp.config import TcpConfig
from synack.trace.diagram import render_mermaid, render_svg
from synack.trace.model import analyze, conn_ips, guess_roles
from synack.trace.narrate import render as explain_render
from synack.trace.plots import csv_texts, time_sequence
from synack.trace.report import render_report, traced_hosts
from synack.trace.timeline import render
from synack.wire.ipv6 import conn_hosts, split_endpoint

SVG_TEXT = "{http://www.w3.org/2000/svg}text"
FAMILIES = pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])


def lossy_run(ipv6: bool) -> tuple[Scenario, list[dict[str, object]]]:
    rng = random.Random(4)
    sc = Scenario(4, path=PathConfig(delay=0.05, loss=0.08), config=TcpConfig(msl=1.0), ipv6=ipv6)
    sc.listen(47000, rng.randbytes(20000), send_after_eof=True)
    sc.connect(47000, rng.randbytes(20000))
    sc.run(until=120)
    assert any(r["ev"] == "net_drop" for r in sc.trace), "the run must lose something"
    return sc, sc.trace


def test_endpoint_text_round_trips_both_families() -> None:
    assert split_endpoint("10.0.0.1:80") == ("10.0.0.1", 80)
    assert split_endpoint("[2001:db8::1]:443") == ("2001:db8::1", 443)
    assert split_endpoint("[::ffff:10.0.0.1]:7") == ("::ffff:10.0.0.1", 7)
    assert conn_hosts("[2001:db8::1]:5>[2001:db8::2]:80") == ("2001:db8::1", "2001:db8::2")
    assert conn_ips("10.0.0.1:5>10.0.0.2:80") == ("10.0.0.1", "10.0.0.2")


@FAMILIES
def test_every_view_names_hosts_by_role_and_plain_address(ipv6: bool) -> None:
    sc, trace = lossy_run(ipv6)
    client, server = (CLIENT_IP6, SERVER_IP6) if ipv6 else (CLIENT_IP, SERVER_IP)
    assert (sc.client_ip, sc.server_ip) == (client, server)
    roles = guess_roles(trace)
    assert roles == {client: "client", server: "server"}
    run = analyze(trace)
    assert sorted(run.hosts) == sorted([client, server])
    assert all(s.src in run.hosts and s.dst in run.hosts for s in run.segments)
    assert any(s.lost for s in run.segments)  # net_drop records found their segments
    # Timeline and explain: the peer column is the role, not an endpoint.
    for lines in (render(trace, roles), explain_render(trace, roles)):
        text = "\n".join(lines)
        assert "-> server" in text and "-> client" in text
        assert not re.search(r"-> \[?[0-9a-f.:]+\]?:\d", text), "a peer named by endpoint"
        assert "[20" not in text and "]:" not in text
        assert all(" host" not in line[:30] for line in lines)
    # Diagrams: two lanes, labelled with role and address.
    mermaid = render_mermaid(run)
    assert f"participant H0 as client {client}" in mermaid
    assert f"participant H1 as server {server}" in mermaid
    svg = render_svg(run)
    texts = [el.text or "" for el in ET.fromstring(svg).iter(SVG_TEXT)]
    assert any(client in t for t in texts) and any(server in t for t in texts)
    # Plots: the busiest sender and its receiver are the two hosts.
    ts = time_sequence(run)
    assert ts is not None and {ts.sender, ts.receiver} == {client, server}
    assert ts.segments and ts.acks
    assert all(csv_texts(run).values())
    # Report: both hosts traced, named by role.
    assert traced_hosts(run) == {client, server}
    html = render_report(trace)
    assert f'{{"ip":"{client}","role":"client"}}' in html
    assert f"<p>client {client}, server {server};" in html
    assert "[20" not in html.split("<main>")[0]
