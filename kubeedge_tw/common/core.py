"""The root service of one side: a ``MultiService`` that owns the module bus and the modules.

``twistd kubeedge-cloud`` and ``twistd kubeedge-edge`` each build one :class:`Core` in their
``makeService``. Modules are added as named child services and registered on the bus in
the same step, so the service tree is the registry (no import-time registration). Children
start in the order added and stop in reverse; ``stopService`` waits for all of them and
then fails any ``send_sync`` still waiting, so nothing is left on the reactor.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.common.bus import Bus

__all__ = ["Core", "ModuleSpec", "SetupError", "build_core"]


class SetupError(Exception):
    """A module cannot be built from the config (missing or bad files, ...). The side
    reports the message as one line and exits 1 before anything starts."""


class ModuleSpec:
    """How to build one module of a side: its KubeEdge name, the config section that
    enables it (``modules.<key>.enable``) and a factory ``factory(core, config)``.

    A spec whose ``factory`` is None names a KubeEdge module this build does not provide
    yet; enabling it in the config is reported in the start-up log, not silently ignored.
    """

    def __init__(self, name, config_key, factory):
        self.name = name
        self.config_key = config_key
        self.factory = factory


class Core(service.MultiService):
    """One side's service tree: the bus plus a child service per module."""

    log = Logger()

    def __init__(self, side, clock, config):
        super().__init__()
        self.setName(side)
        self.side = side
        self.clock = clock
        self.config = config
        self.bus = Bus(clock)
        #: Modules the config enables that this build cannot provide (logged at start).
        self.unavailable = []
        self._started_call = None

    def add_module(self, module):
        """Register ``module`` on the bus and add it as a named child service."""
        self.bus.register(module)
        module.setName(module.name)
        module.setServiceParent(self)
        return module

    def module_names(self):
        """Names of the modules in this tree, in start order."""
        return [m.name for m in self.bus.modules()]

    def startService(self):
        self.log.info("{side} starting (state dir {state_dir}); modules: {modules}",
                      side=self.side, state_dir=self.config.state_dir,
                      modules=", ".join(self.module_names()) or "none",
                      log_event="core_starting")
        for name in self.unavailable:
            self.log.warn("{side}: module {module} is enabled in the config but this build "
                          "does not provide it yet", side=self.side, module=name,
                          log_event="module_unavailable")
        super().startService()
        # twistd starts services before the reactor runs (and before it installs its
        # signal handlers); "started" is announced from the first reactor turn, when the
        # side really serves and a SIGTERM takes the orderly path.
        self._started_call = self.clock.callLater(0, self._announce_started)

    def _announce_started(self):
        self._started_call = None
        self.log.info("{side} started", side=self.side, log_event="core_started")

    @defer.inlineCallbacks
    def stopService(self):
        if self._started_call is not None and self._started_call.active():
            self._started_call.cancel()
        self._started_call = None
        self.log.info("{side} stopping", side=self.side, log_event="core_stopping")
        yield super().stopService()
        self.bus.stop()
        self.log.info("{side} stopped", side=self.side, log_event="core_stopped")


def build_core(side, clock, config, specs, before_modules=None):
    """Build a :class:`Core` and add every module the config enables, in ``specs`` order.

    ``before_modules(core)`` may add services the modules share (started before them)."""
    core = Core(side, clock, config)
    if before_modules is not None:
        before_modules(core)
    for spec in specs:
        section = config.modules.get(spec.config_key) if "modules" in config else None
        enabled = bool(section.get("enable", False)) if section is not None else False
        if not enabled:
            continue
        if spec.factory is None:
            core.unavailable.append(spec.name)
            continue
        core.add_module(spec.factory(core, config))
    return core
