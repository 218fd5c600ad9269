"""Applications behind the CLI verbs that do more than call one library function: the
end-to-end demo, ``generate``, ``info``, the contact sheet and the benchmark. Each is
importable (a notebook can call it); :mod:`spgnet.commands` only parses arguments."""
