"""Helpers for ``benchmarks/bench_net.py``: namespaces, endpoint agents, the table.

* :mod:`netbench.lab` makes and removes the network namespaces the benchmark
  runs in, starts every process itself and ends exactly those (by PID);
* :mod:`netbench.kernel_agent` is the kernel's end of each test (plain
  sockets, standard library only), run as a script inside a namespace;
* :mod:`netbench.synack_agent` is synack's end (``Host.tun`` and asyncio
  streams), run the same way;
* :mod:`netbench.report` formats figures, ratios and targets as Markdown and
  writes them into ``docs/benchmarks.md``.

Agents talk to the orchestrator with lines on stdout: ``READY {json}`` once
they listen, ``RESULT {json}`` with their figures at the end.
"""
