"""Snapshots by undo journal: what makes a refused order cheap.

The model's World restores a reverted verb from a deep copy of every piece
of state (`World._snapshot`, a clone: tens of milliseconds once ten thousand
positions are open). PerpOrders' `execute_order` takes one on every
execution, and a refused open ("vault: capacity", "margin: below initial")
needs it. The lab's `LabWorld` journals instead: while the journal is on,
the state's dicts and side lists record the old value of every key they
change, and a snapshot is a mark in that record plus copies of the few
objects the model changes in place (the engine's, vault's and token's
scalar fields, each market's MarketState). Restoring undoes the record back
to the mark. Same contract as World's (a restored world is the world as it
was), at the cost of the changes made since, not of the world's size.

tests/risk/test_journal.py checks that a book full of refused opens leaves
exactly the state the plain World leaves.
"""

from model.protocol import World

_MISSING = object()


class JDict(dict):
    """A dict that logs (self, key, old value) on every change while a log
    is attached."""

    __slots__ = ("log",)

    def __init__(self, *args, log=None):
        super().__init__(*args)
        self.log = log

    def __setitem__(self, k, v):
        self.log.append((self, k, dict.get(self, k, _MISSING)))
        dict.__setitem__(self, k, v)

    def __delitem__(self, k):
        self.log.append((self, k, dict.get(self, k, _MISSING)))
        dict.__delitem__(self, k)

    def pop(self, k, *default):
        self.log.append((self, k, dict.get(self, k, _MISSING)))
        return dict.pop(self, k, *default)

    def setdefault(self, k, default=None):
        if type(default) is list:  # a new member list: journaled too
            default = JList(default, log=self.log)
        if k not in self:
            self[k] = default
        return dict.__getitem__(self, k)

    def update(self, *args, **kw):
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def popitem(self):  # pragma: no cover - the model does not call it
        raise TypeError("JDict.popitem is not journaled")

    def clear(self):  # pragma: no cover
        raise TypeError("JDict.clear is not journaled")

    def undo(self, k, old):
        if old is _MISSING:
            dict.pop(self, k, None)
        else:
            dict.__setitem__(self, k, old)


class JList(list):
    """A list that logs a full copy of itself before its first change after
    each mark (side lists hold at most 1,000 addresses)."""

    __slots__ = ("log", "mark")

    def __init__(self, *args, log=None):
        super().__init__(*args)
        self.log = log
        self.mark = -1

    def _save(self):
        log = self.log
        if self.mark != log.epoch:
            self.mark = log.epoch
            log.append((self, None, list(self)))

    def append(self, x):
        self._save()
        list.append(self, x)

    def pop(self, *i):
        self._save()
        return list.pop(self, *i)

    def __setitem__(self, i, x):
        self._save()
        list.__setitem__(self, i, x)

    def __delitem__(self, i):  # pragma: no cover
        self._save()
        list.__delitem__(self, i)

    def insert(self, i, x):  # pragma: no cover
        self._save()
        list.insert(self, i, x)

    def remove(self, x):  # pragma: no cover
        self._save()
        list.remove(self, x)

    def undo(self, _k, old):
        list.__setitem__(self, slice(None), old)


class Log(list):
    epoch = 0


def _scalars(obj):
    """An object's fields that are not journaled containers (copied by value)."""
    return {k: v for k, v in obj.__dict__.items() if not isinstance(v, (JDict, JList))}


class JournaledWorld(World):
    """A World whose snapshots are undo marks while `journal_on()` holds.

    Containers journaled: every dict field of the engine, token and vault
    state (each position, order, balance, member list ...); the member
    lists inside `members`. Copied at each snapshot: the scalar fields of
    those three, the world's own (fund owner, floor), and each MarketState
    (the model changes market aggregates in place). Positions, orders and
    the other stored values are replaced, never changed in place, on the
    verbs the lab runs under the journal (order requests and executions,
    deposits), which the test above holds the lab to."""

    journal = None

    def journal_on(self):
        log = self.journal = Log()
        for obj in (self.e, self.token, self.v):
            for k, v in list(obj.__dict__.items()):
                if type(v) is dict:
                    setattr(obj, k, JDict(v, log=log))
        self.e.members = JDict({k: JList(v, log=log) for k, v in self.e.members.items()}, log=log)

    def journal_off(self):
        for obj in (self.e, self.token, self.v):
            for k, v in list(obj.__dict__.items()):
                if isinstance(v, JDict):
                    setattr(obj, k, dict(v))
        self.e.members = {k: list(v) for k, v in self.e.members.items()}
        self.journal = None

    def commit(self):
        """Forget the record (no snapshot is outstanding)."""
        if self.journal is not None:
            del self.journal[:]
            self.journal.epoch += 1

    def _snapshot(self):
        log = self.journal
        if log is None:
            return super()._snapshot()
        log.epoch += 1
        return ("journal", len(log), _scalars(self.e), _scalars(self.token), _scalars(self.v),
                {mid: dict(st.__dict__) for mid, st in self.e.state.items()},
                (self.fund_floor, self.fund_owner, self.fund_pending_owner), len(self.events))

    def _restore(self, snap):
        if not (isinstance(snap, tuple) and snap and snap[0] == "journal"):
            return super()._restore(snap)
        _, mark, e, tok, v, states, fund, n = snap
        log = self.journal
        for container, k, old in reversed(log[mark:]):
            container.undo(k, old)
        del log[mark:]
        log.epoch += 1
        # a member list created since the mark is gone with its key; new
        # JLists are made by setdefault below
        for obj, saved in ((self.e, e), (self.token, tok), (self.v, v)):
            for k in [k for k in obj.__dict__ if k not in saved and not isinstance(obj.__dict__[k], (JDict, JList))]:
                del obj.__dict__[k]
            obj.__dict__.update(saved)
        for mid in [m for m in self.e.state if m not in states]:  # pragma: no cover - markets are added before
            dict.pop(self.e.state, mid)
        for mid, fields in states.items():
            self.e.state[mid].__dict__.update(fields)
        self.fund_floor, self.fund_owner, self.fund_pending_owner = fund
        del self.events[n:]
