"""The live revision: what the Deployment's current template says the service is.

Usage::

    revision = Revision.of(deployment, cluster.is_bad_image, broken_images)
    revision.pool_size        # DB_POOL_SIZE as an int (None when it is not a number)
    revision.flag("FEATURE_JOURNAL_ENABLED")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEPLOYMENT", "FEATURE_FLAGS", "NAMESPACE", "POOL_SIZE_ENV", "SERVICE", "Revision"]

SERVICE = "emotionscare"
NAMESPACE = "prod"
DEPLOYMENT = "emotionscare"
POOL_SIZE_ENV = "DB_POOL_SIZE"
# flag → (feature, the external API it calls); the same mapping as runbook.settings' external_apis.
FEATURE_FLAGS: dict[str, tuple[str, str | None]] = {
    "FEATURE_MUSIC_GENERATION_ENABLED": ("music", "hume"),
    "FEATURE_AI_COACH_ENABLED": ("coach", "openai"),
    "FEATURE_MUSIC_PLAYBACK_ENABLED": ("playlists", "spotify"),
    "FEATURE_JOURNAL_ENABLED": ("journal", None),
}


@dataclass(frozen=True)
class Revision:
    """What the Deployment's current template says the service is: image, env, flags, pool size."""

    number: str
    image: str
    env: Mapping[str, str]
    template_key: str
    replicas: int
    crashing: bool
    broken: bool

    @property
    def tag(self) -> str:
        last = self.image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"

    @property
    def bad(self) -> bool:
        return self.crashing or self.broken

    @property
    def pool_size(self) -> int | None:
        """`DB_POOL_SIZE` as an int; None when it is missing or not a number (see `pool_size_error`)."""
        raw = self.env.get(POOL_SIZE_ENV, "10")
        try:
            return max(int(raw), 0)
        except ValueError:
            return None

    @property
    def pool_size_error(self) -> str | None:
        if self.pool_size is None:
            return f"{POOL_SIZE_ENV}={self.env.get(POOL_SIZE_ENV)!r} is not a number"
        return None

    def flag(self, name: str) -> bool:
        """A feature flag: on unless its env var says false/0/off/no."""
        return self.env.get(name, "true").strip().lower() not in ("false", "0", "off", "no")

    @property
    def features(self) -> dict[str, bool]:
        return {feature: self.flag(flag) for flag, (feature, _api) in FEATURE_FLAGS.items()}

    @classmethod
    def of(
        cls, deployment: dict[str, Any], is_bad_image: Callable[[str], bool], broken: set[str]
    ) -> Revision:
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
        image = str(container["image"])
        key = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        return cls(
            number=(deployment["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "0"
            ),
            image=image,
            env=env,
            template_key=key,
            replicas=int(deployment["spec"].get("replicas", 1)),
            crashing=is_bad_image(image),
            broken=image in broken or "broken" in tag,
        )
