"""Scale-out implementations of the run engine's seams (DESIGN §7): Redis and Celery.

Package rule: these sit beside the embedded ones (`app.events`, `app.signals`,
`app.runner.threads`) and implement the same Protocols of `app.seams`; only the
composition root (`app.extensions`) imports them, when `SCRIPTBOX_EXECUTOR=celery`.
"""
