"""End-to-end tests: the walkthrough as a user types it.

Both sides run as separate ``twistd`` processes; the tests act only through what a user has:
the ``python -m kubeedge_tw`` commands (gettoken, join), kubectl against the embedded API
server, the docker CLI, mosquitto_pub/mosquitto_sub, HTTP to the apps, and signals to the
processes. Nothing is called in-process.
"""
