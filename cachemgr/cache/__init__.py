"""The image cache: naming, usage, scanning, planning and applying."""
