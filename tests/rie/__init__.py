"""RIE harness: run a built layer under AWS's Runtime Interface Emulator (see harness.py)."""
