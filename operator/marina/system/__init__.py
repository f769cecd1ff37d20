"""What the process and the machine give every other part: clocks, CPUs, memory, text for messages.

Imports nothing of Marina's: the bottom layer.
"""
