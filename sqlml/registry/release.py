"""The release statements: DEPLOY VERSION, ROLLBACK, DISABLE, ENABLE, aliases and DROP MODEL VERSION.

Each runs in one transaction: the serving state changes and its log entry is written together, or
neither is (docs/release.md).
"""

from __future__ import annotations

import re

from ..errors import SqlmlError
from ..model.version import ModelVersion
from .deployments import Decision, Serving, rollback_target
from .versions import Registry

ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Release:
    """Changes what a model serves, through its registry."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.engine = registry.engine

    def deploy(self, name: str, version: int | str) -> Serving:
        target = self.registry.resolve(name, version)
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            if serving.deployed == target.version:
                raise SqlmlError(f"Model '{name}' version {target.version} is already deployed.")
            self._check_label(serving, target)
            decision = Decision("deploy", target.version, serving.deployed, reason="deployed by hand")
            serving.deployed = target.version
            self.registry.record(serving, decision)
        return serving

    def rollback(self, name: str) -> Serving:
        stored = set(self.registry.numbers(name))
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            target = rollback_target(self.registry.deployments.log(name), stored)
            if target is None:
                raise SqlmlError(f"Model '{name}' has no earlier deployment to roll back to: version "
                                 f"{serving.deployed} is the first one deployed (that is still stored).")
            decision = Decision("rollback", target, serving.deployed, reason=f"rolled back from version {serving.deployed}")
            serving.deployed = target
            self.registry.record(serving, decision)
        return serving

    def set_disabled(self, name: str, disabled: bool) -> Serving:
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            if serving.disabled == disabled:
                raise SqlmlError(f"Model '{name}' is already {'disabled' if disabled else 'enabled'}.")
            serving.disabled = disabled
            reason = "kill switch: ML.PREDICT serves the baseline" if disabled else "kill switch released"
            self.registry.record(serving, Decision("disable" if disabled else "enable", serving.deployed, reason=reason))
        return serving

    def set_alias(self, name: str, version: int | str, alias: str) -> Serving:
        _check_alias(alias)
        target = self.registry.resolve(name, version)
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            previous = serving.aliases.get(alias)
            serving.aliases[alias] = target.version
            self.registry.record(serving, Decision("alias", target.version, previous, alias=alias,
                                                   reason=f"'{alias}' names version {target.version}"))
        return serving

    def unset_alias(self, name: str, alias: str) -> Serving:
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            if alias not in serving.aliases:
                known = ", ".join(sorted(serving.aliases)) or "none"
                raise SqlmlError(f"Model '{name}' has no alias '{alias}' (its aliases: {known}).")
            version = serving.aliases.pop(alias)
            self.registry.record(serving, Decision("unalias", version, alias=alias, reason=f"'{alias}' unset"))
        return serving

    def drop_version(self, name: str, version: int | str) -> ModelVersion:
        """Delete one version; the deployed one is refused, and aliases naming it go with it."""
        target = self.registry.resolve(name, version)
        tables = self.registry.tables()
        with self.engine.transaction():
            serving = self.registry.serving_state(name)
            if serving.deployed == target.version:
                raise SqlmlError(f"Version {target.version} of model '{name}' is deployed, so it cannot be dropped. "
                                 f"Deploy another first (ALTER MODEL {name} DEPLOY VERSION n, or ALTER MODEL {name} "
                                 f"ROLLBACK), or drop the whole model with DROP MODEL {name}.")
            gone = [a for a, v in serving.aliases.items() if v == target.version]
            for alias in gone:
                del serving.aliases[alias]
            self.registry.note_dropped([target])
            self.engine.fetch(f"DELETE FROM {tables.models} WHERE name = ? AND version = ?", [name, target.version])
            self.engine.fetch(f"DELETE FROM {tables.trials} WHERE name = ? AND version = ?", [name, target.version])
            reason = f"dropped{'; aliases unset: ' + ', '.join(gone) if gone else ''}"
            self.registry.record(serving, Decision("drop_version", target.version, reason=reason))
        return target

    def _check_label(self, serving: Serving, target: ModelVersion) -> None:
        if serving.deployed is None:
            return
        current = self.registry.resolve(serving.model, serving.deployed)
        if current.label != target.label:
            raise SqlmlError(f"Version {target.version} of model '{serving.model}' predicts '{target.label}', but the "
                             f"deployed version {current.version} predicts '{current.label}': deploying it would change "
                             "what every ML.PREDICT and view over the model returns. Train it as another model instead.")


def _check_alias(alias: str) -> None:
    if not ALIAS.fullmatch(alias) or alias.isdigit():
        raise SqlmlError(f"An alias is a name such as champion or challenger; got {alias!r}.")
