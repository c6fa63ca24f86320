"""The embedded run engine: a driver per run, threads as the RunQueue, a heartbeat per process.

Package rule: `app.runner` sits above `app.services` (it drives runs through the grant
coordinator and the broker) and below the views and the factory, which inject it.
"""
