"""Everything that reads or draws a run, above the stack and below the commands.

* :mod:`.schema`: the typed record kinds of ``docs/trace.md`` (what the writers emit);
* :mod:`.load`: JSON lines in, checked records out;
* :mod:`.model`: the analysis model (:class:`~.model.Run`, :class:`~.model.Seg`);
* :mod:`.segment`: the one rendering of a segment that every view uses;
* :mod:`.words`, :mod:`.step`, :mod:`.meaning`, :mod:`.narrate`, :mod:`.timeline`: narration
  and the timeline;
* :mod:`.diagram`, :mod:`.plots`, :mod:`.report`: pictures and the HTML page;
* :mod:`.capture`: pcap/pcapng writers, the network tap and trace replay.
"""
