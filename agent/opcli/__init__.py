"""``cmp-agent cli``: the vendor's PKI command line, on top of NETCONF.

grammar (the guide's syntax notation and the matcher), commands (the command
table), operations (the NETCONF they become), shell (views, commit and
waiting requests), runner / interactive / toxml (carrying them out), display
(the statistics table), main (the subcommand).
"""
