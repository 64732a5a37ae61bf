//! The promote-pending Lambda: an EventBridge schedule (every 15 minutes)
//! runs [`cashback_app::jobs::promote::promote_due`], which releases pending
//! cashback whose date has come, expires balance and holds, and sends the
//! "cashback ready" emails. Settings, deadline and errors:
//! [`cashback_edge::scheduled`].

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;

use cashback_app::jobs::promote::{promote_due, PromoteOutcome};

pub use cashback_edge::scheduled::{
    job_config_from_env, job_deadline, ConfigError, Deps, HandlerError, DEFAULT_MARGIN,
};

/// One scheduled run.
pub async fn function_handler(
    deps: &Deps,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<PromoteOutcome, HandlerError> {
    let run = deps.run_of(&event)?;
    promote_due(
        &deps.ctx,
        deps.clock.as_ref(),
        &deps.config,
        run.now,
        run.deadline,
    )
    .await
    .map_err(|error| cashback_edge::scheduled::failed("promote-pending", error))
}
