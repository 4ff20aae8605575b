"""rankbot's pure core: the rankings domain, the diff engine, digests and their renderers.

Pure: no I/O, no clock, no network or database libraries. Time is always a parameter.
"""
