//! Placeholder replaced below.
/// Runs the demo.
pub async fn run(_d: Option<std::time::Duration>) -> anyhow::Result<()> { Ok(()) }
