"""`make demo` (`python -m sandbox.demo`): the whole system on one machine, then one real incident.

Usage::

    python -m sandbox.demo                 # start everything, play the incident, keep running (Ctrl-C)
    python -m sandbox.demo --no-incident   # start everything and wait: run things from the UI
    python -m sandbox.demo --once          # ... and stop after the incident's all-clear (CI, scripts)

What it starts, each a process of its own (logs in `var/demo/logs/`), on 127.0.0.1 only:

1. a Prefect server (`RUNBOOK_DEMO_PREFECT_PORT`, 4200): the UI and the API, on its own embedded
   PostgreSQL (`RUNBOOK_DEMO_PREFECT_DB=postgresql`, the default; `sqlite` answered "database is
   locked" under load), with the crashed-runs automation applied (`flows.automations`): a run whose
   runner dies is set Crashed after `RUNBOOK_CRASH_DETECTION_WINDOW_S` (90 s) without a heartbeat;
2. the sandbox world (`python -m sandbox up`, ports from `RUNBOOK_DEMO_SANDBOX_PORT_BASE`, 8100):
   the Kubernetes API emulator, the service under care, PostgreSQL, Slack/PagerDuty/Sentry stand-ins;
3. intake (`python -m intake`, `RUNBOOK_INTAKE_PORT`, 8088) with a fresh bearer token per source;
4. `python -m flows.warm respond`: the `respond` deployment, run in a warm process (an alert's
   response starts within a second, docs/latency.md);
5. `python -m flows.serve --exclude respond`: every other deployment (the runbooks, the P2 flows, the
   drills with their monthly schedule, the post-mortem), polling every second.

Then the incident: `bad-deploy` is injected (a broken release, deployed now), the Alertmanager webhook
the sandbox's monitoring would send goes to intake, and the terminal follows what happens: the flow
runs (with their UI links), the sandbox's Slack as the response posts to it, the rollback, and the
all-clear. Everything stays up until Ctrl-C (or SIGTERM), which stops every process it started and
checks that every port is free again. A second run starts from a clean `var/demo` (its state is
removed at start); a port still in use is reported by number, with the setting that moves it.

The package: `system` (ports, the children's environment, starting them), `incident` (the bad deploy,
the alert, following it to the all-clear), `settings` (`RUNBOOK_DEMO_*`), `cli` (the command).
"""
