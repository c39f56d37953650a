"""The service around passes: the oslo.service timer, signals and reloads,
systemd notifications, and the status file."""
