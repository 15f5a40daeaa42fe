"""The production topology run for real on one machine (`make scale-test`, issue 14 item 6).

`topology` starts the processes of deployments/ (PostgreSQL, Redis, two Prefect API processes and
one services process, two warm `respond` runners, a process worker, two intake processes, the world);
`proxy` spreads the clients' connections over the two API processes; `play` plays incidents and kills
one process in the middle of each; `__main__` prints and records the counts.
"""
