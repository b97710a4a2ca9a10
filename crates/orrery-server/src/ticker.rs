//! The shape of every periodic background task of a node: run a step every period (a late
//! tick delays the next rather than bursting) until the node stops.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `step` every `period` until `stop` is cancelled.
pub(crate) async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        step().await;
    }
}
