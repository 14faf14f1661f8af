"""An upstream's hidden server capacity: a FIFO queue in front of K service slots.

One :class:`ServiceGate` per upstream (shared by every key: it is the server's capacity,
not a per-client limit). An admitted request takes a slot at once when one is free and
nobody is waiting; otherwise it queues, first come first served. A slot is handed to the
head of the queue the moment one is released or the capacity rises (a step, or a ramp
crossing a whole number: a timer wakes the queue then). When the capacity falls, requests
in service finish; newcomers wait until fewer than the new capacity are in service.

Everything runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from coinharvest.emulator.capacity_config import CapacityConfig
from coinharvest.emulator.capacity_schedule import capacity_at, next_rise

__all__ = ["ServiceGate"]

#: Shortest timer to re-check a rising capacity (a timer can fire a hair early).
_MIN_WAKE_S = 0.0005


class ServiceGate:
    """Service slots and the FIFO queue of one upstream.

    :param config: the upstream's ``capacity`` section.
    :param clock: monotonic clock in seconds (the app's); the steps' clock starts now.
    """

    def __init__(self, config: CapacityConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._epoch = clock()
        self._waiters: deque[asyncio.Future[None]] = deque()  # cancelled ones linger
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self.in_service = 0

    def __repr__(self) -> str:
        return f"<ServiceGate in_service={self.in_service} queued={self.queued}>"

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return self._waiting

    def capacity(self) -> int | None:
        """Slots now (``None``: unlimited)."""
        if not self._config.steps:
            return self._config.concurrent
        return capacity_at(self._config, self._clock() - self._epoch)

    def state(self) -> dict[str, Any]:
        """``{"capacity", "queued", "in_service"}`` now, for the stats document."""
        return {"capacity": self.capacity(), "queued": self.queued, "in_service": self.in_service}

    def configure(self, config: CapacityConfig, *, restart: bool) -> None:
        """Use ``config`` from now on; ``restart`` restarts the steps' clock.

        Requests waiting start at once if the capacity rose.
        """
        self._config = config
        if restart:
            self._epoch = self._clock()
        self._cancel_timer()
        self._pump()

    def try_acquire(self) -> bool:
        """Take a slot now if one is free and nobody is queued (then call :meth:`release`)."""
        if self._waiting or not self._has_room():
            return False
        self.in_service += 1
        return True

    def enqueue(self) -> asyncio.Future[None]:
        """Join the queue; pass the ticket to :meth:`wait_turn`."""
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(ticket)
        self._waiting += 1
        self._arm_timer()
        return ticket

    async def wait_turn(self, ticket: asyncio.Future[None]) -> None:
        """Wait until ``ticket`` holds a slot (then call :meth:`release`).

        A cancelled wait gives up its place, or the slot if it had already been handed one.
        """
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self.release()  # it had been handed a slot
            else:
                ticket.cancel()
                self._waiting -= 1
            raise

    def release(self) -> None:
        """Give a slot back; the head of the queue gets it if the capacity allows."""
        self.in_service -= 1
        self._pump()

    def _has_room(self) -> bool:
        capacity = self.capacity()
        return capacity is None or self.in_service < capacity

    def _pump(self) -> None:
        """Hand free slots to the queue in order, then watch for the next capacity rise."""
        while self._waiters and (self._waiters[0].done() or self._has_room()):
            ticket = self._waiters.popleft()
            if not ticket.done():
                self._waiting -= 1
                self.in_service += 1
                ticket.set_result(None)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None or not self._waiting:
            return
        elapsed = self._clock() - self._epoch
        rise = next_rise(self._config, elapsed)
        if rise is None:
            return
        loop = self._waiters[-1].get_loop()
        self._timer = loop.call_later(max(_MIN_WAKE_S, rise - elapsed), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
