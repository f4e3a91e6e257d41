"""Which version of each model is live: the deployments log, a hash chain per model, and the serving
state it adds up to (docs/release.md, "Chain of custody").

``sqlml.deployments`` is append-only: one row per decision — a retrain deployed or held back by the
gate, DEPLOY, ROLLBACK, DISABLE, ENABLE, an alias set or unset, options set, a version or the model
dropped — with the gate's figures. Each incarnation of a model (from its creation to DROP MODEL)
starts with a ``create`` entry that draws a random id, and every entry is signed together with its
sequence number, its time, that id and the previous entry's signature. ``sqlml.serving`` holds what
the log adds up to, one signed row per model, naming the log entry it reflects (its ``seq`` and
signature); it is accepted only when that entry is the log's last, the chain from the genesis entry
verifies, and replaying the chain gives the same state. A verified state is remembered by its text
(the serving row and the log's head), so scoring pays for the chain once per change, not per batch.

Rows written by sqlml before the chain (no ``incarnation``) are checked one by one as they were
signed; the model's next release statement starts its chain, carrying its state over.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import typing as t
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import sqlglot
from sqlglot import exp

from ..errors import ModelIntegrityError, ModelNotFoundError, SqlmlError
from ..model import envelope

if t.TYPE_CHECKING:
    from ..engines.base import Engine
    from .schema import Tables

#: Log actions that make a version the deployed one.
DEPLOYING = ("trained_deployed", "deploy", "rollback")
ACTIONS = ("create", *DEPLOYING, "trained_not_deployed", "disable", "enable", "alias", "unalias", "drop_version",
           "set_options", "drop")
LOG_COLUMNS = ("seq", "model", "version", "previous_version", "action", "alias", "reason", "metric", "new_value",
               "old_value", "eval_rows")
#: What a chained entry's signature covers besides the previous entry's signature.
CHAINED = (*LOG_COLUMNS, "incarnation", "created_at")
CARRIED = "carried over from the log of an older sqlml"

#: The serving row and the log's head as one text (``state \\n signature \\n count seq head action``),
#: read in one query by ML.PREDICT and by every view when it runs. ``count`` is the number of entries
#: since the state's genesis; an absent serving row leaves the first two lines empty.
STATE_SQL = sqlglot.parse_one("""
SELECT concat_ws(chr(10), coalesce(max(CAST(s.state AS VARCHAR)), ''), coalesce(max(s.signature), ''),
  concat_ws(' ', count(d.seq) FILTER (WHERE d.seq >= coalesce(CAST(s.state ->> 'genesis' AS BIGINT), 0)),
            coalesce(max(d.seq), 0), coalesce(arg_max(d.signature, d.seq), '-'), coalesce(arg_max(d.action, d.seq), '-')))
FROM (SELECT __model AS model) AS k LEFT JOIN __serving AS s ON s.model = k.model
LEFT JOIN __deployments AS d ON d.model = k.model""", read="duckdb")


@dataclass
class Decision:
    """One entry of the deployments log."""

    action: str
    version: int | None
    previous_version: int | None = None
    reason: str | None = None
    metric: str | None = None
    new_value: float | None = None
    old_value: float | None = None
    eval_rows: int | None = None
    alias: str | None = None


@dataclass
class Serving:
    """What a model serves: its deployed version, the kill switch, its aliases, and for each version
    these name its fingerprint, threshold and expiry (all a view needs when it runs); and the log
    entry it reflects: ``seq``, its signature ``head``, and the incarnation that began at ``genesis``."""

    model: str
    deployed: int | None = None
    disabled: bool = False
    aliases: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)  # "3" → {"fingerprint": …, "threshold": …, "expires": …}
    trained: list[int] = field(default_factory=list)  # the versions this incarnation trained and did not drop
    seq: int = 0
    incarnation: str | None = None  # None: written by sqlml before the chain
    genesis: int | None = None
    head: str | None = None

    def fields(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    def signature(self) -> str:
        return envelope.sign({"serving": self.fields()})

    def text(self) -> str:
        return json.dumps(self.fields())


def state_query(model: str, serving: exp.Expression, deployments: exp.Expression) -> exp.Select:
    """:data:`STATE_SQL` for ``model`` over the tables ``serving`` and ``deployments`` (table expressions)."""
    tables = {"__serving": serving, "__deployments": deployments}

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name in tables:
            return tables[node.name].copy().as_(node.alias)
        if isinstance(node, exp.Column) and node.name == "__model":
            return exp.Literal.string(model)
        return node
    return STATE_SQL.transform(fill)


# --- verification -------------------------------------------------------------------------------------

#: State texts (see :data:`STATE_SQL`) whose whole chain verified in this process, and the state they hold.
_VERIFIED: OrderedDict[str, Serving] = OrderedDict()
VERIFIED_KEPT = 4096


def checked(model: str, text: str, read_log: t.Callable[[Serving], list[dict]] | None) -> Serving | None:
    """The serving state ``text`` holds, verified against its signature and the log's head; the whole
    chain is read with ``read_log`` and verified unless this text verified before. None: the model has
    neither a serving state nor a log (never deployed, or written by sqlml before deployments were
    recorded). A view passes no ``read_log``: it cannot query, and this process verified (or wrote)
    every state a legitimate change leaves."""
    if text in _VERIFIED:
        _VERIFIED.move_to_end(text)
        return _VERIFIED[text]
    try:
        rest, head = text.rsplit("\n", 1)
        state, signature = rest.rsplit("\n", 1)
        count, seq, head_signature, action = head.split(" ", 3)
        count, seq = int(count), int(seq)
    except ValueError:
        raise ModelIntegrityError(f"The serving state or deployments log of model '{model}' cannot be read: it was "
                                  "modified outside sqlml.") from None
    if not state:
        return _missing(model, seq, action)
    serving = verified_serving(model, state, signature)
    _check_head(serving, seq, head_signature)
    if read_log is None:
        raise ModelIntegrityError(f"The deployments log of model '{model}' changed outside sqlml since this session "
                                  "verified it (its serving state and last entry are not the ones sqlml wrote). "
                                  "Reconnect to have it checked again.")
    verify_chain(serving, read_log(serving), count)
    remember(text, serving)
    return serving


def remember(text: str, serving: Serving) -> None:
    _VERIFIED[text] = copy.deepcopy(serving)  # the caller goes on changing its own
    while len(_VERIFIED) > VERIFIED_KEPT:
        _VERIFIED.popitem(last=False)


def verified_text(serving: Serving, signature: str, count: int, action: str) -> str:
    """The text :data:`STATE_SQL` reads for ``serving`` as just stored (so this process trusts what it wrote)."""
    return "\n".join([serving.text(), signature, f"{count} {serving.seq} {serving.head} {action}"])


def _missing(model: str, seq: int, action: str) -> None:
    if seq == 0:
        return None
    if action == "drop":
        raise ModelNotFoundError(f"Model '{model}' was dropped.")
    raise ModelIntegrityError(f"The serving state of model '{model}' (sqlml.serving) is missing although its "
                              f"deployments log goes on to entry {seq} ('{action}'): it was deleted outside sqlml.")


def _check_head(serving: Serving, seq: int, signature: str) -> None:
    """The serving state reflects the log's last entry, or it is stale, or entries went missing."""
    model = serving.model
    if seq > serving.seq:
        raise ModelIntegrityError(f"The serving state of model '{model}' reflects entry {serving.seq} of its "
                                  f"deployments log, but the log goes on to entry {seq}: entries were added outside "
                                  "sqlml, or the serving state is stale (an older copy was written back).")
    if seq < serving.seq:
        raise ModelIntegrityError(f"Entries {seq + 1} to {serving.seq} of the deployments log of model '{model}' are "
                                  "missing (deleted outside sqlml): its serving state reflects entry "
                                  f"{serving.seq}.")
    if serving.incarnation is not None and signature != serving.head:
        raise ModelIntegrityError(f"Entry {seq} of the deployments log of model '{model}' is not the entry its "
                                  "serving state reflects: it was replaced outside sqlml.")


def verify_chain(serving: Serving, entries: list[dict], count: int | None = None) -> None:
    """Every entry of the serving state's incarnation, oldest first, is in place (numbered from its
    genesis without gaps), signed in a chain, dated in order, and adds up to ``serving``."""
    model, first = serving.model, serving.genesis or 1
    numbers = [e["seq"] for e in entries]
    if numbers != list(range(first, serving.seq + 1)) or (count is not None and count != len(entries)):
        gone = sorted(set(range(first, serving.seq + 1)) - set(numbers))
        raise ModelIntegrityError(f"The deployments log of model '{model}' has lost entr{'y' if len(gone) == 1 else 'ies'} "
                                  f"{', '.join(map(str, gone)) or '(numbering)'}: deleted outside sqlml.")
    if serving.incarnation is None:  # written before the chain: each row on its own
        for entry in entries:
            if entry["incarnation"] is not None or not envelope.signed({"deployment": _log_fields(entry)},
                                                                        entry["signature"]):
                raise _entry_error(model, entry)
        return
    previous, when = "", None
    for position, entry in enumerate(entries):
        genesis = entry["action"] == "create"
        if entry["incarnation"] != serving.incarnation or genesis != (position == 0) \
                or not envelope.signed(_chained(entry, previous), entry["signature"]):
            raise _entry_error(model, entry)
        if when is not None and entry["created_at"] < when:
            raise ModelIntegrityError(f"Entry {entry['seq']} of the deployments log of model '{model}' is dated "
                                      f"{entry['created_at']}, before the entry ahead of it ({when}).")
        previous, when = entry["signature"], entry["created_at"]
    replayed = replay(entries)
    if _outcome(replayed) != _outcome(serving):
        raise ModelIntegrityError(f"The serving state of model '{model}' is not what its deployments log adds up to "
                                  f"(version {replayed.deployed} deployed, {'disabled' if replayed.disabled else 'enabled'}"
                                  f", aliases {replayed.aliases}, versions {replayed.trained}).")


def _outcome(serving: Serving) -> tuple:
    return serving.deployed, serving.disabled, serving.aliases, sorted(serving.trained)


def _entry_error(model: str, entry: dict) -> ModelIntegrityError:
    return ModelIntegrityError(f"Entry {entry['seq']} of the deployments log of model '{model}' does not match its "
                               "signature: it was modified, moved or copied from another model or incarnation "
                               "outside sqlml.")


def replay(entries: list[dict]) -> Serving:
    """The state a chain of entries adds up to (deployed version, kill switch, aliases)."""
    state = Serving(entries[0]["model"] if entries else "")
    for entry in entries:
        action, version = entry["action"], entry["version"]
        _trained(state, action, version)
        if action in DEPLOYING:
            state.deployed = version
        elif action in ("disable", "enable"):
            state.disabled = action == "disable"
        elif action == "alias":
            state.aliases[entry["alias"]] = version
        elif action == "unalias":
            state.aliases.pop(entry["alias"], None)
        elif action == "drop_version":
            state.aliases = {a: v for a, v in state.aliases.items() if v != version}
    return state


def _trained(serving: Serving, action: str, version: int | None) -> None:
    """Training adds a version to those the incarnation holds; dropping it removes it."""
    if action in ("trained_deployed", "trained_not_deployed"):
        serving.trained = sorted({*serving.trained, version})
    elif action == "drop_version":
        serving.trained = [v for v in serving.trained if v != version]


def verified_serving(model: str, state: str, signature: str) -> Serving:
    """A serving row read from the database, refused unless it matches its signature. The signature
    covers the row's JSON as written (rows written before the chain lack its fields)."""
    try:
        fields = json.loads(state)
        serving = Serving(**fields)
    except (TypeError, ValueError):
        fields, serving = None, None
    if serving is None or serving.model != model or not envelope.signed({"serving": fields}, signature):
        raise ModelIntegrityError(f"The serving state of model '{model}' (sqlml.serving) does not match its "
                                  "signature: it was modified outside sqlml.")
    return serving


def deployment_stack(log: list[dict]) -> list[int]:
    """The log replayed as a stack: each deploy pushes its version, each rollback pops back to its own."""
    stack: list[int] = []
    for entry in log:
        if entry["action"] in ("trained_deployed", "deploy"):
            stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
            while stack and stack[-1] != entry["version"]:  # a rollback lands on this version
                stack.pop()
    return stack


def rollback_target(log: list[dict], stored: set[int]) -> int | None:
    """The version ROLLBACK deploys: the one deployed before the current one, replaying the log as a
    stack, so repeated rollbacks step further back. Versions no longer stored are skipped."""
    earlier = [v for v in deployment_stack(log)[:-1] if v in stored]
    return earlier[-1] if earlier else None


# --- reading and writing --------------------------------------------------------------------------------

class Deployments:
    """Reads and appends the deployments log and the serving state through an engine; ``tables``
    names the registry's tables in the current database; ``refuse_key`` raises when what does not
    verify was signed with another key (then that is the error)."""

    def __init__(self, engine: "Engine", tables: t.Callable[[], "Tables"], refuse_key: t.Callable[[], None]):
        self.engine = engine
        self.tables = tables
        self.refuse_key = refuse_key

    def serving(self, model: str) -> Serving | None:
        """The model's serving state, verified (signature, log head, chain); None for a model that has
        none (never deployed, or trained before deployments were recorded)."""
        tables = self.tables()
        query = state_query(model, exp.to_table(tables.serving, dialect="duckdb"),
                            exp.to_table(tables.deployments, dialect="duckdb"))
        try:
            serving = checked(model, self.engine.fetch(query.sql("duckdb"))[0][0], self._chain_of)
        except ModelIntegrityError:
            self.refuse_key()
            raise
        return copy.deepcopy(serving)  # the verified one stays as it was read: a caller changes its copy

    def _chain_of(self, serving: Serving) -> list[dict]:
        columns = [*CHAINED, "signature"]
        rows = self.engine.fetch(f"SELECT {', '.join(columns)} FROM {self.tables().deployments} WHERE model = ? "
                                 "AND seq >= ? ORDER BY seq", [serving.model, serving.genesis or 0])
        return [dict(zip(columns, row)) for row in rows]

    def log(self, model: str) -> list[dict]:
        """The log of the model's current incarnation, oldest first, verified entry by entry and as a chain."""
        serving = self.serving(model)
        if serving is None:
            return []
        entries = self._chain_of(serving)
        try:
            verify_chain(serving, entries)
        except ModelIntegrityError:
            self.refuse_key()
            raise
        return entries

    def current(self, model: str, latest: int | None, refresh: t.Callable[[Serving], Serving]) -> Serving:
        """The model's verified serving state, its chain begun first (inside the caller's transaction)
        when it has none: a new model, one dropped and created again (a new incarnation), or one written
        by an older sqlml, whose state — ``latest`` deployed if it has none — is carried over; the begun
        state is stored with ``refresh``'s details of the versions it names."""
        try:
            serving = self.serving(model)
        except ModelNotFoundError:  # dropped: it begins again
            serving = None
        if serving is not None and serving.incarnation is not None:
            return serving
        carried = _carried(serving, self._legacy_log(model) if serving is not None else [], latest)
        (last,) = self.engine.fetch(f"SELECT coalesce(max(seq), 0) FROM {self.tables().deployments} WHERE model = ?",
                                    [model])[0]
        begun = Serving(model, seq=last, incarnation=secrets.token_hex(16), genesis=last + 1, head="")
        last = Decision("create", None, reason=CARRIED if carried else "model created")
        self._append(begun, last)
        for last in carried:
            _apply(begun, last)
            self._append(begun, last)
        return self.store(refresh(begun), last.action)

    def _legacy_log(self, model: str) -> list[dict]:
        columns = [*CHAINED, "signature"]
        rows = self.engine.fetch(f"SELECT {', '.join(columns)} FROM {self.tables().deployments} WHERE model = ? "
                                 "ORDER BY seq", [model])
        return [dict(zip(columns, row)) for row in rows]

    def record(self, serving: Serving, decision: Decision) -> Serving:
        """Append ``decision`` to ``serving``'s chain (from :meth:`current`) and store ``serving`` as the
        model's new state; call inside the caller's transaction, so the log and the state change together."""
        self._append(serving, decision)
        return self.store(serving, decision.action)

    def _append(self, serving: Serving, decision: Decision) -> None:
        if decision.action not in ACTIONS:
            raise SqlmlError(f"Unknown deployment action {decision.action!r}.")
        entry = {"seq": serving.seq + 1, "model": serving.model, **asdict(decision), "incarnation": serving.incarnation,
                 "created_at": self._now(serving)}
        entry["signature"] = envelope.sign(_chained(entry, serving.head or ""))
        columns = [*CHAINED, "signature"]
        self.engine.fetch(f"INSERT INTO {self.tables().deployments} ({', '.join(columns)}) "
                          f"VALUES ({', '.join('?' * len(columns))})", [entry[c] for c in columns])
        serving.seq, serving.head = entry["seq"], entry["signature"]
        _trained(serving, decision.action, decision.version)

    def _now(self, serving: Serving) -> dt.datetime:
        """This transaction's time, never before the entry ahead (clocks may step back between sessions)."""
        ((now, before),) = self.engine.fetch(
            f"SELECT CAST(current_timestamp AS TIMESTAMP), (SELECT created_at FROM {self.tables().deployments} "
            "WHERE model = ? AND seq = ?)", [serving.model, serving.seq])
        return max(now, before) if before is not None else now

    def store(self, serving: Serving, action: str | None = None) -> Serving:
        """Store the model's serving state, signed (inside the caller's transaction), and trust it."""
        signature = serving.signature()
        self.engine.fetch(f"INSERT OR REPLACE INTO {self.tables().serving} (model, state, signature) VALUES (?, ?, ?)",
                          [serving.model, serving.text(), signature])
        if action is not None:
            remember(verified_text(serving, signature, serving.seq - (serving.genesis or 1) + 1, action), serving)
        return serving

    def drop(self, model: str) -> None:
        """DROP MODEL: the model no longer serves anything. Its log stays, as history, closed by a
        ``drop`` entry (signed after whatever entry is last, even when the state does not verify: a
        damaged model can always be dropped)."""
        tables = self.tables()
        rows = self.engine.fetch(f"SELECT seq, signature, incarnation FROM {tables.deployments} WHERE model = ? "
                                 "ORDER BY seq DESC LIMIT 1", [model])
        if rows:
            seq, head, incarnation = rows[0]
            self._append(Serving(model, seq=seq, head=head, incarnation=incarnation or secrets.token_hex(16)),
                         Decision("drop", None, reason="model dropped"))
        self.engine.fetch(f"DELETE FROM {tables.serving} WHERE model = ?", [model])


def _carried(serving: Serving | None, legacy_log: list[dict], latest: int | None) -> list[Decision]:
    """The entries that give a new chain the state a model had before it (written by an older sqlml):
    its deployments in rollback order, the kill switch, its aliases."""
    if serving is None:
        return [Decision("deploy", latest, reason=CARRIED)] if latest is not None else []
    stack = deployment_stack(legacy_log)
    if serving.deployed is not None and (not stack or stack[-1] != serving.deployed):
        stack.append(serving.deployed)
    carried = [Decision("deploy", v, reason=CARRIED) for v in stack]
    if serving.disabled:
        carried.append(Decision("disable", serving.deployed, reason=CARRIED))
    carried += [Decision("alias", v, alias=a, reason=CARRIED) for a, v in sorted(serving.aliases.items())]
    return carried


def _apply(serving: Serving, decision: Decision) -> None:
    """A carried entry's effect on ``serving`` (see :func:`replay`)."""
    if decision.action in DEPLOYING:
        serving.deployed = decision.version
    elif decision.action == "disable":
        serving.disabled = True
    elif decision.action == "alias":
        serving.aliases[decision.alias] = decision.version


def _chained(entry: dict, previous: str) -> dict:
    """What a chained entry's signature covers."""
    return {"deployment": json.loads(json.dumps({c: entry.get(c) for c in CHAINED}, default=str)), "previous": previous}


def _log_fields(entry: dict) -> dict:
    """What an entry written before the chain was signed over."""
    return json.loads(json.dumps({c: entry.get(c) for c in LOG_COLUMNS}, default=str))

