//! `echo-provider`: serves the echo modules under the `echo` namespace until Ctrl-C,
//! finding the cluster in `ORRERY_ENDPOINTS` (default `127.0.0.1:7400`).

use orrery_sdk::{Discovery, Provider, SdkConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints = std::env::var("ORRERY_ENDPOINTS").unwrap_or("127.0.0.1:7400".into());
    let discovery = Discovery::Static(endpoints.split(',').map(String::from).collect());
    let provider = Provider::new(
        SdkConfig::new(echo_provider::NAMESPACE, discovery),
        echo_provider::modules(),
    )?;

    let mut state = provider.state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            eprintln!("echo-provider: {:?}", *state.borrow_and_update());
        }
    });
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    provider.run(None, shutdown).await?;
    Ok(())
}
