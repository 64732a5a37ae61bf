//! The send-reminders Lambda: an EventBridge schedule (hourly) runs
//! [`cashback_app::jobs::reminders::send_reminders`], which sends each due
//! position of the reminder series once, no faster than the configured
//! send rate, backing off when SES throttles; then
//! [`cashback_app::jobs::bonuses::send_bonuses`] credits and announces the
//! bonuses due. Settings, deadline and errors:
//! [`cashback_edge::scheduled`].

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;

use cashback_app::jobs::bonuses::send_bonuses;
use cashback_app::jobs::reminders::{send_reminders, RemindersOutcome};

pub use cashback_edge::scheduled::{
    job_config_from_env, job_deadline, ConfigError, Deps, HandlerError, DEFAULT_MARGIN,
};

/// One scheduled run.
pub async fn function_handler(
    deps: &Deps,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RemindersOutcome, HandlerError> {
    let run = deps.run_of(&event)?;
    let outcome = send_reminders(
        &deps.ctx,
        deps.clock.as_ref(),
        &deps.config,
        run.now,
        run.deadline,
    )
    .await
    .map_err(|error| cashback_edge::scheduled::failed("send-reminders", error))?;
    // Bonuses ride the same hourly schedule with their own checkpoint and
    // summary line; what the deadline leaves undone, the next run does.
    send_bonuses(
        &deps.ctx,
        deps.clock.as_ref(),
        &deps.config,
        run.now,
        run.deadline,
    )
    .await
    .map_err(|error| cashback_edge::scheduled::failed("bonuses", error))?;
    Ok(outcome)
}
