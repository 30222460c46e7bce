"""Unit tests of edged (the edge pod manager), with the verified FakeRuntime."""
