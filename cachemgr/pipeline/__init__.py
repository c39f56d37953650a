"""One image cache pass: its settings, gather -> plan -> apply -> report, and
how it ended. Reads cache/ and inventory/; knows nothing of the daemon."""
