"""What a drill does, step by step, for the drill flows of flows/drills.py.

- `options`: the one options model of the four drill flows (`DrillOptions`) and `DrillRefused`;
- `monitor`: what the drill's monitor sees (the symptom, as production monitoring would), the drill's own
  log, and the timer that ends an outage;
- `response`: the alert raised and the flow that answers it (the runbook, respond, or intake);
- `exercise`: one drill: target check, inject, detect, respond, verify, always clear, measure;
- `report`: the report as an artifact, the drill history, the summary in Slack.
"""
