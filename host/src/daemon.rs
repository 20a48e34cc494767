//! `host run`: the daemon's main loop — start the node, serve the API, shut down gracefully on
//! SIGTERM or Ctrl-C.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::api::server;
use crate::config::Config;
use crate::node::Node;

/// Refuses to listen beyond loopback without a token unless the operator said so.
pub fn check_exposure(config: &Config, token: Option<&str>) -> anyhow::Result<()> {
    if !config.listen.ip().is_loopback()
        && token.is_none()
        && !config.auth.allow_unauthenticated_remote
    {
        bail!(
            "refusing to listen on {} (not loopback) without a bearer token: set auth.token or \
             auth.token_file (or --token-file), or auth.allow_unauthenticated_remote = true if \
             something in front of the daemon authenticates",
            config.listen
        );
    }
    Ok(())
}

/// Runs the daemon until SIGTERM/SIGINT. Prints `listening on <addr>` on stdout once ready.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let token = config.token()?;
    check_exposure(&config, token.as_deref())?;
    let node = Node::start(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        model = %config.model,
        devices = config.devices.len(),
        crosscheck_fraction = config.crosscheck.effective_fraction(),
        data_dir = %config.data_dir.display(),
        "host daemon ready"
    );
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {addr}");
        let _ = stdout.flush();
    }
    let app = server::router(node.clone(), token, config.limits.max_body_bytes);
    let stopping = node.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            // Cancel jobs first, so requests waiting on them answer and the server can drain.
            stopping.stop();
        })
        .await
        .context("the HTTP server failed")?;
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Starts the daemon's HTTP server in this process on `config.listen` (port 0 for any) and
/// returns the node and the bound address; for the benchmark and in-process tests.
pub async fn spawn(config: &Config) -> anyhow::Result<(Arc<Node>, std::net::SocketAddr)> {
    let token = config.token()?;
    let node = Node::start(config)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = server::router(node.clone(), token, config.limits.max_body_bytes);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((node, addr))
}
