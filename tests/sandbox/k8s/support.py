"""What the emulator tests share: the seeded workload's names (polling: `sandbox.testing.wait_for`)."""

from __future__ import annotations

from datetime import UTC, datetime

NS = "prod"
NAME = "web"
IMAGE = "registry.local/emotionscare/web:1.4.2"
T0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
