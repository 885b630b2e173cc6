"""Run packetdrill scripts against synack in virtual time (no kernel, no root).

Modules: :mod:`.lexer` and :mod:`.parser` (the script language), :mod:`.runner`
(execution and matching in virtual time), :mod:`.sockets` (a BSD-socket layer over the
sans-IO stack), :mod:`.profiles` (RFC and Linux configurations, sysctl mapping),
:mod:`.shell` (backtick commands, interpreted rather than run), :mod:`.pycode`
(``%{ }%`` blocks) and :mod:`.expectations` (recorded corpus results).  The command
line is ``synack packetdrill`` (:mod:`synack.commands.packetdrill`); see
``docs/packetdrill.md``.
"""

from .lexer import PacketdrillSyntaxError
from .parser import Script, parse, parse_file
from .runner import RunOptions, RunResult, run_script

__all__ = [
    "PacketdrillSyntaxError",
    "RunOptions",
    "RunResult",
    "Script",
    "parse",
    "parse_file",
    "run_script",
]
