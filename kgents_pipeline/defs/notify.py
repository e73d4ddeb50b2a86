"""Tell a chat channel when the verdict's state changes, and only then.

The sensor reads the newest `launch_readiness` materialization and the state the channel was
last told (`history.notifications`); when they differ it posts a Slack-compatible message to
`KGENTS_NOTIFY_WEBHOOK_URL` and records the delivery. A failed post is retried with backoff,
logged, recorded, and tried again at the next tick; it never touches the verdict.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from kgents_pipeline.defs.resources import HistoryResource, NotifyResource
from kgents_pipeline.errors import KgentsError

VERDICT_ASSET = dg.AssetKey("launch_readiness")


def _value(metadata: dict, key: str, default: object = None) -> object:
    entry = metadata.get(key)
    return default if entry is None else entry.value


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to KGENTS_NOTIFY_WEBHOOK_URL (Slack-compatible JSON: state, blocking "
    "reasons, run id, a link to the run) when the state of the newest recorded verdict differs "
    "from the state last delivered, and records every delivery in the history's `notifications`. "
    "Does nothing while the variable is unset. A failed post is retried with backoff and again "
    "at the next tick; it never alters the verdict.",
)
def notify_on_verdict_change(
    context: dg.SensorEvaluationContext, history: HistoryResource, notify: NotifyResource
) -> dg.SensorResult | dg.SkipReason:
    from kgents_pipeline.history import notifications
    from kgents_pipeline.notify.message import StateChange, slack_payload, summary
    from kgents_pipeline.notify.webhook import post_json

    if not notify.webhook_url:
        return dg.SkipReason("KGENTS_NOTIFY_WEBHOOK_URL is unset: notifications are off")
    records = context.instance.fetch_materializations(VERDICT_ASSET, limit=1).records
    event = records[0].event_log_entry if records else None
    if event is None or event.asset_materialization is None:
        return dg.SkipReason("no launch_readiness materialization yet")
    marker = str(records[0].storage_id)
    if context.cursor == marker:
        return dg.SkipReason("no new verdict since the last one handled")
    metadata = dict(event.asset_materialization.metadata)
    if not _value(metadata, "recorded", False):
        # A what-if verdict (the `now` config) is not the state of the launch.
        return dg.SensorResult(
            skip_reason="the newest verdict is a what-if: not told", cursor=marker
        )
    state = str(_value(metadata, "state", "?"))
    store = history.store()
    try:
        last = store.read(notifications.last_delivered)
    except KgentsError as exc:
        return dg.SkipReason(f"history not readable now ({exc}); trying again at the next tick")
    if last is not None and last.state == state:
        return dg.SensorResult(skip_reason=f"state unchanged: {state}", cursor=marker)

    verdict_id = _value(metadata, "verdict_id")
    change = StateChange(
        state=state,
        previous_state=last.state if last else None,
        rehearsal=bool(_value(metadata, "rehearsal", False)),
        blocking=tuple(str(line) for line in (_value(metadata, "blocking_reasons") or [])),  # type: ignore[attr-defined]
        run_id=event.run_id,
        run_url=notify.run_url(event.run_id),
        verdict_id=int(verdict_id) if isinstance(verdict_id, int) else None,
        evaluated_at=dt.datetime.fromtimestamp(event.timestamp, dt.UTC).isoformat(
            timespec="seconds"
        ),
    )
    payload = slack_payload(change)
    try:
        delivery = post_json(
            notify.webhook_url,
            payload,
            attempts=notify.attempts,
            timeout_s=notify.timeout_s,
            backoff_s=notify.backoff_s,
            log=context.log.warning,
        )
    except KgentsError as exc:  # an unusable URL: say so at every tick until it is fixed
        context.log.error(str(exc))
        return dg.SkipReason(str(exc))
    record = notifications.Notification(
        state=state,
        previous_state=change.previous_state,
        verdict_id=change.verdict_id,
        dagster_run_id=event.run_id,
        target=delivery.target,
        delivered=delivery.delivered,
        attempts=delivery.attempts,
        status_code=delivery.status_code,
        error=delivery.error,
        payload=payload,
        sent_at=dt.datetime.now(dt.UTC),
    )
    try:
        store.write(notifications.record_notification, record)
    except KgentsError as exc:
        context.log.error(
            f"notification {'sent' if delivery.delivered else 'failed'}, not recorded: {exc}"
        )
    if delivery.delivered:
        context.log.info(f"told {delivery.target}: {summary(change)}")
        return dg.SensorResult(skip_reason=f"told {delivery.target}: {state}", cursor=marker)
    # Not delivered: the cursor stays, so the next tick tries again; the verdict is untouched.
    context.log.error(f"notification of {state} to {delivery.target} failed: {delivery.error}")
    return dg.SkipReason(
        f"notification of {state} to {delivery.target} failed after {delivery.attempts} "
        f"attempt(s): {delivery.error}; trying again at the next tick"
    )
