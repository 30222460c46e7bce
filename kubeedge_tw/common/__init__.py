"""Pieces both sides share: the message model and codec, wire names, resource paths, the
module bus, configuration and logging."""
