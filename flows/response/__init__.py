"""The parts of `respond` (flows/respond.py), one module per thing the guide's response does.

- `options`: the response's options (`ResponseOptions`) and what a verified fix yields (`Resolution`);
- `ownership`: one response per incident (claim it, or join the run that has it, take over if it ended);
- `assess`: P1 minute 1-2, the kind of failure from Sentry, the probes, the metrics and the deploys;
- `triage`: P1 minute 2-3, affected, impact, the decision matrix and the runbook;
- `act`: P1 minute 3-5 (and P2 step 3), the runbook flow as a subflow;
- `urgent`: the P1 timeline and the P2 steps, with the thread, the page and the background work;
- `verify`: service health, then stability through the window;
- `handover`: automation could not restore the service: the lead, and the form in the Prefect UI;
- `all_clear`: the guide's all-clear, the page resolved, the post-mortem started;
- `low_severity`: P3 (workaround, scheduled fix, the team told) and P4 (the backlog).
"""
