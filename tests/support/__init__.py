"""Test harness: real peers (libtorrent, opentracker), grader-like fakes, CLI runner.

Everything here talks to 127.0.0.1 only and every wait is bounded.
"""
