"""Helpers more than one test folder uses: temporary hosts and the one way to
run the real command, daemons, the fake conductor, nova's fixtures, the
broker's vhosts, deadlines and the benchmark scripts' figure lines."""
