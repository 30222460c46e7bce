"""The in-process module bus: KubeEdge beehive's ``Send``, ``SendToGroup``, ``SendSync`` and
``SendResp`` (reference 1.1) on Twisted.

Modules register by name and group. ``send`` puts a message in one module's bounded inbox,
``send_to_group`` in every inbox of a group. ``send_sync`` marks the message ``sync``, sends
it and returns a Deferred that fires with the reply whose ``parent_msg_id`` equals the
request's ``msg_id``, or fails with :class:`SyncTimeout` after ``timeout`` seconds on the
injected clock. Replies come back through ``send_resp``; a transport module (the edge hub)
asks :meth:`Bus.is_waiting` to decide whether a message from the peer is such a reply.

Errors are exceptions the sender sees (:class:`UnknownModule`, :class:`QueueFull`), never
silent drops.
"""

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.common.module import QueueFull

__all__ = ["Bus", "BusError", "UnknownModule", "QueueFull", "SyncTimeout", "BusStopped"]


class BusError(Exception):
    """A message the bus could not deliver."""


class UnknownModule(BusError):
    """No module (or group) of that name is registered."""


class SyncTimeout(TimeoutError):
    """No reply to a ``send_sync`` request arrived in time."""


class BusStopped(Exception):
    """The bus stopped while a ``send_sync`` request was waiting for its reply."""


class Bus:
    """Routes messages between the modules of one side (cloud or edge)."""

    log = Logger()

    def __init__(self, clock):
        self.clock = clock
        self._modules = {}
        self._groups = {}
        # msg_id -> (Deferred, IDelayedCall) of send_sync requests waiting for a reply.
        self._waiting = {}
        self.stopped = False

    # -- registry ---------------------------------------------------------------------------

    def register(self, module):
        """Add ``module`` under its name and group; names are unique."""
        if module.name in self._modules:
            raise ValueError("a module named {!r} is already registered".format(module.name))
        self._modules[module.name] = module
        self._groups.setdefault(module.group, []).append(module)
        module.bus = self

    def module(self, name):
        """The registered module called ``name``, or raise :class:`UnknownModule`."""
        try:
            return self._modules[name]
        except KeyError:
            raise UnknownModule("no module named {!r} on this bus (have: {})".format(
                name, ", ".join(sorted(self._modules)) or "none")) from None

    def has_module(self, name):
        """Whether a module called ``name`` is registered."""
        return name in self._modules

    def modules(self):
        """The registered modules, in registration order."""
        return list(self._modules.values())

    def group_members(self, group):
        """The modules of ``group`` (possibly none)."""
        return list(self._groups.get(group, ()))

    # -- sending ----------------------------------------------------------------------------

    def send(self, module, message):
        """Queue ``message`` for the module named ``module``.

        Raises :class:`UnknownModule` or :class:`QueueFull`; the message was then not taken.
        """
        target = self.module(module)
        try:
            target.enqueue(message)
        except QueueFull:
            self.log.warn("refused {what} for module {module}: inbox full",
                          what=message.describe(), module=module, log_event="bus_queue_full")
            raise

    def send_to_group(self, group, message):
        """Queue ``message`` for every module of ``group``; returns how many took it.

        Raises :class:`UnknownModule` when the group has no module. A full inbox in one
        member does not stop delivery to the others; :class:`QueueFull` is raised after.
        """
        members = self._groups.get(group)
        if not members:
            raise UnknownModule("no module in group {!r}".format(group))
        delivered, full = 0, None
        for member in members:
            try:
                member.enqueue(message)
                delivered += 1
            except QueueFull as e:
                full = e
        if full is not None:
            self.log.warn("refused {what} for part of group {group}: {why}",
                          what=message.describe(), group=group, why=str(full),
                          log_event="bus_queue_full")
            raise full
        return delivered

    def send_sync(self, module, message, timeout):
        """Send ``message`` (marked ``sync``) to ``module``; the Deferred fires with the reply.

        Fails with :class:`SyncTimeout` when no reply with ``parent_msg_id ==
        message.msg_id`` arrives within ``timeout`` seconds, with :class:`BusStopped` when
        the bus stops first, and at once with the delivery error when ``send`` fails.
        """
        if not message.msg_id:
            return defer.fail(BusError("send_sync needs a message with a msg_id"))
        if message.msg_id in self._waiting:
            return defer.fail(BusError("a send_sync for msg {} is already waiting".format(
                message.msg_id)))
        if self.stopped:
            return defer.fail(BusStopped("the bus is stopped"))
        request = message if message.sync else message.replace(sync=True)
        d = defer.Deferred(lambda _: self._forget(request.msg_id))
        timer = self.clock.callLater(timeout, self._timed_out, request, module, timeout)
        self._waiting[request.msg_id] = (d, timer)
        try:
            self.send(module, request)
        except Exception as e:
            self._forget(request.msg_id)
            return defer.fail(e)
        return d

    def expect_reply(self, message, timeout, destination="peer"):
        """Register a reply wait for ``message`` that some other path sends (the edge hub
        sending to the cloud uses this); the Deferred behaves as ``send_sync``'s."""
        if message.msg_id in self._waiting or not message.msg_id:
            return defer.fail(BusError("cannot wait twice, or without an id, for msg {!r}"
                                       .format(message.msg_id)))
        d = defer.Deferred(lambda _: self._forget(message.msg_id))
        timer = self.clock.callLater(timeout, self._timed_out, message, destination, timeout)
        self._waiting[message.msg_id] = (d, timer)
        return d

    def is_waiting(self, msg_id):
        """Whether a ``send_sync`` request with this id waits for its reply."""
        return bool(msg_id) and msg_id in self._waiting

    def send_resp(self, message):
        """Deliver ``message`` to the ``send_sync`` waiting on its ``parent_msg_id``.

        Returns True when a waiter took it. A reply nobody waits for (it came after the
        timeout, or was never asked for) is logged and returns False.
        """
        entry = self._waiting.pop(message.parent_msg_id, None)
        if entry is None:
            self.log.info("reply {what} to msg {parent} came when nobody was waiting",
                          what=message.describe(), parent=message.parent_msg_id or "-",
                          log_event="bus_unexpected_reply")
            return False
        d, timer = entry
        if timer.active():
            timer.cancel()
        d.callback(message)
        return True

    def _timed_out(self, request, destination, timeout):
        entry = self._waiting.pop(request.msg_id, None)
        if entry is None:
            return
        d, _ = entry
        d.errback(SyncTimeout("no reply to {} from {} within {}s".format(
            request.describe(), destination, timeout)))

    def _forget(self, msg_id):
        entry = self._waiting.pop(msg_id, None)
        if entry is not None and entry[1].active():
            entry[1].cancel()

    def stop(self):
        """Fail every waiting ``send_sync`` with :class:`BusStopped` and cancel its timer."""
        self.stopped = True
        waiting, self._waiting = self._waiting, {}
        for msg_id, (d, timer) in waiting.items():
            if timer.active():
                timer.cancel()
            d.errback(BusStopped("the bus stopped before msg {} was answered".format(msg_id)))
